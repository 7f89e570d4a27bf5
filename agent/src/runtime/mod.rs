//! Makes reality match this node's allocations: watches `allocations/{node}/` (and nothing
//! else), runs one supervisor per allocation, and on the first successful listing stops what a
//! previous agent left for allocations that no longer exist.

mod env;
mod launcher;
mod policy;
pub mod process;
mod registry;
mod reporter;
mod state;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::model::Allocation;
use uni_core::store::keys::{AllocationKey, TypedKey};
use uni_core::store::{codec, EventKind, KvStore, RangeOptions, Revision};

use crate::cgroup::CgroupManager;
use crate::metrics::Metrics;

pub use env::{device_share, visible_devices};
pub use launcher::ShimMode;
pub use policy::{Kind, Policy};
pub use registry::{Entry, FinishedRuns, Registry};
pub use reporter::StatusReporter;
pub use state::{ReplicaDir, ReplicaState};
pub use supervisor::backoff;

use supervisor::{remove_orphan, supervise, Signals};

/// What happens to replica processes when the agent stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnShutdown {
    /// Keep running; the next agent re-adopts them (the default: an agent upgrade or restart
    /// does not touch workloads).
    #[default]
    Leave,
    /// Stop them gracefully (dev mode; always so without a shim).
    Stop,
}

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Grace period of inference replicas (training jobs carry their own).
    pub default_grace: Duration,
    /// First restart delay of a crashing inference replica; doubles per crash.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A run that lasted this long resets the backoff.
    pub backoff_reset_after: Duration,
    pub on_shutdown: OnShutdown,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            log_max_bytes: crate::logs::DEFAULT_MAX_BYTES,
            log_max_files: crate::logs::DEFAULT_MAX_FILES,
            default_grace: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            backoff_reset_after: Duration::from_secs(600),
            on_shutdown: OnShutdown::Leave,
        }
    }
}

/// What every supervisor shares.
pub struct Ctx {
    pub node: String,
    pub store: Arc<dyn KvStore>,
    /// `DATA_DIR/replicas`.
    pub root: PathBuf,
    pub cgroups: CgroupManager,
    pub shim: ShimMode,
    pub reporter: StatusReporter,
    pub metrics: Metrics,
    pub registry: Registry,
    /// Output of replicas that ended and whose allocation is gone.
    pub finished: FinishedRuns,
    pub opts: RuntimeOptions,
    /// Variables of the agent every replica inherits.
    pub base_env: Vec<(String, String)>,
    pub has_accelerators: bool,
}

impl Ctx {
    pub fn inherited_env() -> Vec<(String, String)> {
        env::inherited()
    }
}

struct Handle {
    alloc: Allocation,
    remove: CancellationToken,
}

/// Owns the supervisors.
pub struct Runtime {
    ctx: Arc<Ctx>,
    running: HashMap<String, Handle>,
    /// Allocations changed in place, started once their old process is gone.
    replacing: HashMap<String, Allocation>,
    tasks: JoinSet<String>,
    halt: CancellationToken,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Runtime {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            ctx,
            running: HashMap::new(),
            replacing: HashMap::new(),
            tasks: JoinSet::new(),
            halt: CancellationToken::new(),
        }
    }

    /// Watches the allocations until `cancel`, then halts every supervisor and waits for them.
    pub async fn run(mut self, cancel: CancellationToken) {
        let prefix = AllocationKey::node_prefix(&self.ctx.node);
        let mut first = true;
        let mut backoff = Duration::from_millis(100);
        'outer: loop {
            let listed = tokio::select! {
                _ = cancel.cancelled() => break 'outer,
                r = list(&*self.ctx.store, &prefix) => r,
            };
            let (allocs, revision) = match listed {
                Ok(l) => l,
                Err(e) => {
                    self.ctx
                        .metrics
                        .store_errors
                        .with_label_values(&["list_allocations"])
                        .inc();
                    warn!(error = %e, "listing allocations failed; workloads keep running, retrying");
                    if self.pause(&cancel, &mut backoff).await {
                        break 'outer;
                    }
                    continue;
                }
            };
            self.sync(allocs, first);
            first = false;
            let mut stream = match self.ctx.store.watch(&prefix, revision + 1).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "watching allocations failed; retrying");
                    if self.pause(&cancel, &mut backoff).await {
                        break 'outer;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break 'outer,
                    Some(done) = self.tasks.join_next() => self.finished(done),
                    batch = stream.next() => match batch {
                        Some(Ok(events)) => {
                            for e in events {
                                match e.kind {
                                    EventKind::Put => match codec::decode::<Allocation>(&e.kv.key, &e.kv.value) {
                                        Ok(a) => self.ensure(a),
                                        Err(err) => warn!(error = %err, "undecodable allocation ignored"),
                                    },
                                    EventKind::Delete => {
                                        if let Ok(k) = AllocationKey::parse(&e.kv.key) {
                                            self.remove(&k.id);
                                        }
                                    }
                                }
                            }
                        }
                        Some(Err(e)) => {
                            warn!(error = %e, "allocation watch ended; listing again");
                            break;
                        }
                        None => break,
                    },
                }
            }
        }
        self.halt.cancel();
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
        }
        info!("runtime stopped");
    }

    /// Sleeps the backoff (doubling it); true when cancelled meanwhile.
    async fn pause(&mut self, cancel: &CancellationToken, backoff: &mut Duration) -> bool {
        let delay = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return true,
                _ = &mut sleep => return false,
                Some(done) = self.tasks.join_next() => self.finished(done),
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
        if alloc.node != self.ctx.node {
            warn!(id = %alloc.id, node = %alloc.node, "allocation under our prefix names another node; ignored");
            return;
        }
        if let Some(h) = self.running.get(&alloc.id) {
            if h.alloc == alloc {
                return;
            }
            // Changed in place (not how the scheduler works, but handled): run it anew.
            info!(id = %alloc.id, "allocation changed: replacing its process");
            h.remove.cancel();
            self.replacing.insert(alloc.id.clone(), alloc);
            return;
        }
        let remove = CancellationToken::new();
        let sig = Signals {
            remove: remove.clone(),
            halt: self.halt.clone(),
        };
        let id = alloc.id.clone();
        self.running.insert(
            id.clone(),
            Handle {
                alloc: alloc.clone(),
                remove,
            },
        );
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            supervise(ctx, alloc, sig).await;
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
        let Ok(entries) = std::fs::read_dir(&self.ctx.root) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if wanted.contains(&name) {
                continue;
            }
            let Some(dir) = ReplicaDir::new(&self.ctx.root, &name) else {
                continue;
            };
            let ctx = self.ctx.clone();
            self.tasks.spawn(async move {
                remove_orphan(ctx, dir).await;
                name
            });
        }
    }
}

/// Every allocation under `prefix`, and the revision of the listing.
async fn list(store: &dyn KvStore, prefix: &str) -> uni_core::Result<(Vec<Allocation>, Revision)> {
    let mut out = Vec::new();
    let mut opts = RangeOptions {
        limit: Some(500),
        ..RangeOptions::default()
    };
    let mut revision = 0;
    loop {
        let page = store.range(prefix, opts.clone()).await?;
        if revision == 0 {
            revision = page.revision;
        }
        for kv in &page.kvs {
            match codec::decode::<Allocation>(&kv.key, &kv.value) {
                Ok(a) => out.push(a),
                Err(e) => warn!(error = %e, "undecodable allocation ignored"),
            }
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => opts.start_after = Some(last.key.clone()),
            _ => return Ok((out, revision)),
        }
    }
}
