//! Makes reality match this node's allocations: watches `allocations/{node}/` (and nothing
//! else), runs one supervisor per allocation, and on the first successful listing stops what a
//! previous agent left for allocations that no longer exist.

mod env;
pub mod fence;
mod finished_runs;
mod host;
mod launcher;
pub mod namespace_users;
mod options;
mod replica_metrics;
mod replica_table;
mod reporter;
mod run_spec;
mod state;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::model::{Allocation, StopNotice};
use uni_core::store::keys::{AllocationKey, TypedKey};
use uni_core::store::watcher::Event;
use uni_core::store::{codec, KeyValue, Watcher};
use uni_core::Backoff;

pub use env::{device_share, visible_devices};
pub use finished_runs::FinishedRuns;
pub use host::ReplicaHost;
pub use launcher::ShimMode;
pub use options::{OnShutdown, RuntimeOptions, DEFAULT_FENCE_AFTER};
pub use replica_metrics::register as register_replica_metrics;
pub use replica_table::{ReplicaEntry, ReplicaTable};
pub use reporter::StatusReporter;
pub use run_spec::{Kind, RunAs, RunSpec};
pub use state::{ReplicaDir, ReplicaState};

use supervisor::{remove_orphan, supervise, Signals};

/// Allocations per listing page.
const ALLOCATION_PAGE: usize = 500;
/// Between failed listings or watches of the allocations.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

struct Handle {
    alloc: Allocation,
    remove: CancellationToken,
    /// A stop notice added to the allocation reaches its supervisor here.
    notice: watch::Sender<Option<StopNotice>>,
}

/// Whether `a` and `b` differ only in their stop notice or drain mark (which gateways act
/// on, not the agent: a draining replica keeps running until its allocation goes).
fn only_notice_differs(a: &Allocation, b: &Allocation) -> bool {
    let strip = |x: &Allocation| Allocation {
        notice: None,
        draining: None,
        ..x.clone()
    };
    strip(a) == strip(b)
}

/// Owns the supervisors.
pub struct Runtime {
    host: Arc<ReplicaHost>,
    running: HashMap<String, Handle>,
    /// Allocations changed in place, started once their old process is gone.
    replacing: HashMap<String, Allocation>,
    tasks: JoinSet<String>,
    halt: CancellationToken,
}

impl Runtime {
    pub fn new(host: Arc<ReplicaHost>) -> Self {
        Self {
            host,
            running: HashMap::new(),
            replacing: HashMap::new(),
            tasks: JoinSet::new(),
            halt: CancellationToken::new(),
        }
    }

    /// Watches the allocations until `cancel`, then halts every supervisor and waits for them.
    pub async fn run(mut self, cancel: CancellationToken) {
        let prefix = AllocationKey::node_prefix(&self.host.node);
        let mut watcher = Watcher::new(self.host.store.clone(), prefix)
            .page_size(ALLOCATION_PAGE)
            .backoff(RETRY);
        let mut first = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = self.tasks.join_next() => self.finished(done),
                events = watcher.next() => match events {
                    Ok(events) => {
                        for e in events {
                            self.apply(e, &mut first);
                        }
                    }
                    Err(e) => {
                        self.host.metrics.store_error("list_allocations");
                        warn!(error = %e, "following allocations failed; workloads keep running, listing again");
                    }
                },
            }
        }
        self.halt.cancel();
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
        }
        info!("runtime stopped");
    }

    fn apply(&mut self, event: Event, first: &mut bool) {
        match event {
            Event::Restarted { kvs, .. } => {
                let allocs = kvs.iter().filter_map(decode).collect();
                self.sync(allocs, std::mem::take(first));
            }
            Event::Applied(kv) => {
                if let Some(a) = decode(&kv) {
                    self.ensure(a);
                }
            }
            Event::Deleted(kv) => {
                if let Ok(k) = AllocationKey::parse(&kv.key) {
                    self.remove(&k.id);
                }
            }
        }
    }

    /// Brings the supervisors in line with a full listing.
    fn sync(&mut self, allocs: Vec<Allocation>, first: bool) {
        let wanted: HashSet<String> = allocs.iter().map(|a| a.id.clone()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
        for a in allocs {
            self.ensure(a);
        }
        if first {
            self.remove_orphans(&wanted);
        }
    }

    fn ensure(&mut self, alloc: Allocation) {
        if alloc.node != self.host.node {
            warn!(id = %alloc.id, node = %alloc.node, "allocation under our prefix names another node; ignored");
            return;
        }
        if let Some(h) = self.running.get_mut(&alloc.id) {
            if h.alloc == alloc {
                return;
            }
            if only_notice_differs(&h.alloc, &alloc) && !h.remove.is_cancelled() {
                if h.alloc.notice != alloc.notice {
                    // Told to stop: the supervisor gives notice, SIGTERM and SIGKILL at the
                    // deadline, and reports it Preempted.
                    info!(id = %alloc.id, "stop notice: stopping the replica");
                    h.notice.send_replace(alloc.notice.clone());
                }
                h.alloc = alloc;
                return;
            }
            // Changed in place (not how the scheduler works, but handled): run it anew.
            info!(id = %alloc.id, "allocation changed: replacing its process");
            h.remove.cancel();
            self.replacing.insert(alloc.id.clone(), alloc);
            return;
        }
        let remove = CancellationToken::new();
        let (notice, notice_rx) = watch::channel(alloc.notice.clone());
        let sig = Signals {
            remove: remove.clone(),
            halt: self.halt.clone(),
            notice: notice_rx,
        };
        let id = alloc.id.clone();
        self.running.insert(
            id.clone(),
            Handle {
                alloc: alloc.clone(),
                remove,
                notice,
            },
        );
        let host = self.host.clone();
        self.tasks.spawn(async move {
            supervise(host, alloc, sig).await;
            id
        });
    }

    fn remove(&mut self, id: &str) {
        self.replacing.remove(id);
        if let Some(h) = self.running.get(id) {
            h.remove.cancel();
        }
    }

    fn finished(&mut self, done: Result<String, tokio::task::JoinError>) {
        match done {
            Ok(id) => {
                if self
                    .running
                    .get(&id)
                    .is_some_and(|h| h.remove.is_cancelled())
                {
                    self.running.remove(&id);
                    if let Some(next) = self.replacing.remove(&id) {
                        if !self.halt.is_cancelled() {
                            self.ensure(next);
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "a replica supervisor failed"),
        }
    }

    /// Directories of allocations that no longer exist: stop and clean up what is left.
    fn remove_orphans(&mut self, wanted: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.host.root) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if wanted.contains(&name) {
                continue;
            }
            let Some(dir) = ReplicaDir::new(&self.host.root, &name) else {
                continue;
            };
            let host = self.host.clone();
            self.tasks.spawn(async move {
                remove_orphan(host, dir).await;
                name
            });
        }
    }
}

/// The allocation stored in `kv`; an undecodable one is skipped with a warning.
fn decode(kv: &KeyValue) -> Option<Allocation> {
    codec::decode::<Allocation>(&kv.key, &kv.value)
        .map_err(|e| warn!(error = %e, "undecodable allocation ignored"))
        .ok()
}
