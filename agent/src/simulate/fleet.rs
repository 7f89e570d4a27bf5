//! The simulated nodes: registration, one keep-alive loop for every lease, and one allocation
//! watch demultiplexed by node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::model::{Allocation, Node, ReplicaPhase, ReplicaStatus, UnixMillis};
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey};
use uni_core::store::watcher::Event;
use uni_core::store::{
    codec, Compare, CompareOp, KeyValue, KvStore, RangeOptions, Txn, TxnOp, Watcher,
};
use uni_core::Backoff;

use super::profile::{expand, ProfileNode};
use super::SimulateConfig;
use crate::agent::VERSION;
use crate::capacity::{self, Reserve, Valued};
use crate::metrics::Metrics;
use crate::registration::{self, Identity, NODE_PAGE};
use crate::runtime::StatusReporter;

/// Store calls in flight at once.
const CONCURRENCY: usize = 64;
/// Nodes written per transaction.
const BATCH: usize = 64;
const ALLOCATION_PAGE: usize = 1000;
/// Between failed registration rounds.
const REGISTER_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// Between failed listings or watches of the allocations: a fixed second.
const ALLOCATIONS_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));

struct SimNode {
    name: String,
    profile: usize,
    lease: AtomicI64,
    written: AtomicBool,
}

pub struct Fleet {
    store: Arc<dyn KvStore>,
    nodes: Vec<SimNode>,
    by_name: HashMap<String, usize>,
    /// One valuation per profile machine, shared by every node built from it.
    valued: Vec<Valued>,
    profile: Vec<ProfileNode>,
    labels: std::collections::BTreeMap<String, String>,
    address: String,
    endpoint: String,
    lease_ttl: Duration,
    metrics: Metrics,
    reporter: StatusReporter,
    /// Allocation id -> its status key, for the allocations "running" here.
    running: Mutex<HashMap<String, StatusKey>>,
    registered: AtomicUsize,
}

impl Fleet {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: &SimulateConfig,
        profile: &[ProfileNode],
        catalog: &Catalog,
        store: Arc<dyn KvStore>,
        address: String,
        endpoint: String,
        metrics: Metrics,
        reporter: StatusReporter,
    ) -> Self {
        let nodes: Vec<SimNode> = expand(profile, config.nodes)
            .into_iter()
            .map(|(name, profile)| SimNode {
                name,
                profile,
                lease: AtomicI64::new(0),
                written: AtomicBool::new(false),
            })
            .collect();
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let valued = profile
            .iter()
            .map(|p| capacity::value(p.inventory(&p.name), catalog, Reserve::default()))
            .collect();
        Self {
            store,
            nodes,
            by_name,
            valued,
            profile: profile.to_vec(),
            labels: config.labels.clone(),
            address,
            endpoint,
            lease_ttl: config.lease_ttl,
            metrics,
            reporter,
            running: Mutex::new(HashMap::new()),
            registered: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes registered at least once.
    pub fn registered(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    fn identity(&self, i: usize) -> Identity {
        let n = &self.nodes[i];
        let mut labels = self.labels.clone();
        labels.extend(self.profile[n.profile].labels.clone());
        labels.insert("simulated".into(), "true".into());
        Identity {
            name: n.name.clone(),
            labels,
            address: self.address.clone(),
            agent_endpoint: self.endpoint.clone(),
            agent_version: VERSION.to_string(),
            limits: Err("simulated node: allocations run without processes".into()),
        }
    }

    fn valued_for(&self, i: usize) -> Valued {
        let n = &self.nodes[i];
        let mut v = self.valued[n.profile].clone();
        v.inventory.hostname = n.name.clone();
        for d in &mut v.inventory.accelerators {
            d.uuid = format!("GPU-sim-{}-{}", n.name, d.index);
        }
        v
    }

    /// Registers every node; returns once all are (retrying while the store is unreachable).
    pub async fn register_all(&self, cancel: &CancellationToken) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.register(all, cancel).await;
    }

    async fn register(&self, mut todo: Vec<usize>, cancel: &CancellationToken) {
        let mut backoff = REGISTER_RETRY;
        while !todo.is_empty() && !cancel.is_cancelled() {
            todo = self.register_once(todo).await;
            if !todo.is_empty() {
                warn!(
                    left = todo.len(),
                    "registering simulated nodes failed; retrying"
                );
                if !backoff.wait(cancel).await {
                    return;
                }
            }
        }
        self.metrics.simulated_nodes.set(self.registered() as i64);
    }

    /// One attempt: grants missing leases, writes nodes in batches; returns what failed.
    async fn register_once(&self, todo: Vec<usize>) -> Vec<usize> {
        let ttl = self.lease_ttl;
        let granted: Vec<(usize, bool)> = stream::iter(todo)
            .map(|i| async move {
                if self.nodes[i].lease.load(Ordering::Relaxed) != 0 {
                    return (i, true);
                }
                match self.store.lease_grant(ttl).await {
                    Ok(id) => {
                        self.nodes[i].lease.store(id, Ordering::Relaxed);
                        (i, true)
                    }
                    Err(_) => (i, false),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut failed: Vec<usize> = granted
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(i, _)| *i)
            .collect();
        let ready: Vec<usize> = granted
            .into_iter()
            .filter(|(_, ok)| *ok)
            .map(|(i, _)| i)
            .collect();
        let existing = match self.existing().await {
            Ok(e) => e,
            Err(_) => return ready.into_iter().chain(failed).collect(),
        };
        let batches: Vec<Vec<usize>> = ready.chunks(BATCH).map(<[usize]>::to_vec).collect();
        let results: Vec<Vec<usize>> = stream::iter(batches)
            .map(|batch| self.write_batch(batch, &existing))
            .buffer_unordered(CONCURRENCY / 8)
            .collect()
            .await;
        failed.extend(results.into_iter().flatten());
        failed
    }

    /// Stored simulated nodes: name -> (node, mod revision), to keep their spec.
    async fn existing(&self) -> uni_core::Result<HashMap<String, (Node, i64)>> {
        let prefix = NodeKey::prefix();
        let mut out = HashMap::new();
        let mut opts = RangeOptions {
            limit: Some(NODE_PAGE),
            ..RangeOptions::default()
        };
        loop {
            let page = self.store.range(&prefix, opts.clone()).await?;
            for kv in &page.kvs {
                if let (Ok(k), Ok(n)) = (
                    NodeKey::parse(&kv.key),
                    codec::decode::<Node>(&kv.key, &kv.value),
                ) {
                    if self.by_name.contains_key(&k.name) {
                        out.insert(k.name, (n, kv.mod_revision));
                    }
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => opts.start_after = Some(last.key.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Writes a batch in one transaction (each node compared on its revision); on a conflict,
    /// node by node. Returns the nodes that failed.
    async fn write_batch(
        &self,
        batch: Vec<usize>,
        existing: &HashMap<String, (Node, i64)>,
    ) -> Vec<usize> {
        let now = UnixMillis::now();
        let mut txn = Txn::new();
        for &i in &batch {
            let name = &self.nodes[i].name;
            let Ok(key) = NodeKey::new(name.as_str()).map(|k| k.format()) else {
                continue;
            };
            let stored = existing.get(name);
            let node = registration::merge(
                stored.map(|(n, _)| n.clone()),
                &self.identity(i),
                &self.valued_for(i),
                now,
            );
            let Ok(value) = codec::encode(&node) else {
                continue;
            };
            txn = txn
                .when([match stored {
                    Some((_, rev)) => Compare::mod_revision(key.as_str(), CompareOp::Equal, *rev),
                    None => Compare::absent(key.as_str()),
                }])
                .and_then([TxnOp::Put {
                    key,
                    value,
                    lease: self.nodes[i].lease.load(Ordering::Relaxed),
                }]);
        }
        match self.store.txn(txn).await {
            Ok(r) if r.succeeded => {
                for &i in &batch {
                    self.mark_written(i);
                }
                return Vec::new();
            }
            Ok(_) => {}
            Err(_) => return batch,
        }
        let mut failed = Vec::new();
        for i in batch {
            let lease = self.nodes[i].lease.load(Ordering::Relaxed);
            match registration::write(&*self.store, &self.identity(i), &self.valued_for(i), lease)
                .await
            {
                Ok(_) => self.mark_written(i),
                Err(_) => failed.push(i),
            }
        }
        failed
    }

    fn mark_written(&self, i: usize) {
        if !self.nodes[i].written.swap(true, Ordering::Relaxed) {
            self.registered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Renews every lease each third of the TTL; nodes whose lease is gone register again.
    pub async fn keep_alive(self: Arc<Self>, cancel: CancellationToken) {
        let period = self.lease_ttl / 3;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let this = &self;
            let results: Vec<(usize, Option<bool>)> = stream::iter(0..self.nodes.len())
                .map(|i| async move {
                    let lease = this.nodes[i].lease.load(Ordering::Relaxed);
                    if lease == 0 {
                        return (i, Some(false));
                    }
                    match this.store.lease_keep_alive(lease).await {
                        Ok(_) => (i, Some(true)),
                        Err(uni_core::Error::LeaseNotFound(_)) => (i, Some(false)),
                        Err(_) => (i, None),
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let lost: Vec<usize> = results
                .iter()
                .filter(|(_, r)| *r == Some(false))
                .map(|(i, _)| *i)
                .collect();
            let unreachable = results.iter().filter(|(_, r)| r.is_none()).count();
            if unreachable > 0 {
                self.metrics
                    .store_errors
                    .with_label_values(&["lease_keep_alive"])
                    .inc_by(unreachable as u64);
                warn!(unreachable, "lease keep-alives failed; retrying");
            }
            if !lost.is_empty() {
                warn!(
                    nodes = lost.len(),
                    "leases lost; registering those nodes again"
                );
                for &i in &lost {
                    self.nodes[i].lease.store(0, Ordering::Relaxed);
                }
                self.register(lost, &cancel).await;
            }
        }
    }

    /// Reports every allocation on a simulated node Running; deletes its status when the
    /// allocation goes.
    pub async fn run_allocations(self: Arc<Self>, cancel: CancellationToken) {
        let mut watcher = Watcher::new(self.store.clone(), AllocationKey::prefix())
            .page_size(ALLOCATION_PAGE)
            .backoff(ALLOCATIONS_RETRY);
        loop {
            let events = tokio::select! {
                _ = cancel.cancelled() => return,
                e = watcher.next() => e,
            };
            match events {
                Ok(events) => {
                    for e in events {
                        self.apply(e);
                    }
                }
                Err(e) => warn!(error = %e, "following allocations failed; listing again"),
            }
        }
    }

    fn apply(&self, event: Event) {
        match event {
            Event::Restarted { kvs, .. } => {
                let allocs: Vec<Allocation> = kvs
                    .iter()
                    .filter(|kv| {
                        AllocationKey::parse(&kv.key)
                            .is_ok_and(|k| self.by_name.contains_key(&k.node))
                    })
                    .filter_map(decode)
                    .collect();
                let ids: HashSet<&str> = allocs.iter().map(|a| a.id.as_str()).collect();
                let gone: Vec<String> = self
                    .running
                    .lock()
                    .map(|r| {
                        r.keys()
                            .filter(|id| !ids.contains(id.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for id in gone {
                    self.stop(&id);
                }
                for a in &allocs {
                    self.start(a);
                }
            }
            Event::Applied(kv) => {
                if let Some(a) = decode(&kv) {
                    self.start(&a);
                }
            }
            Event::Deleted(kv) => {
                if let Ok(k) = AllocationKey::parse(&kv.key) {
                    self.stop(&k.id);
                }
            }
        }
    }

    fn start(&self, a: &Allocation) {
        if !self.by_name.contains_key(&a.node) {
            return;
        }
        let Ok(key) = StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica) else {
            return;
        };
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if running.contains_key(&a.id) {
            return;
        }
        running.insert(a.id.clone(), key.clone());
        self.metrics.simulated_replicas.set(running.len() as i64);
        drop(running);
        self.reporter.set(
            &key,
            ReplicaStatus {
                allocation_id: a.id.clone(),
                node: a.node.clone(),
                phase: ReplicaPhase::Running,
                message: "simulated".into(),
                updated: UnixMillis::now(),
                ..ReplicaStatus::default()
            },
        );
    }

    fn stop(&self, id: &str) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if let Some(key) = running.remove(id) {
            self.metrics.simulated_replicas.set(running.len() as i64);
            drop(running);
            self.reporter.delete(&key, id);
        }
    }

    /// Allocations reported Running now.
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Logs how many nodes are registered (for the command line).
    pub fn log_summary(&self) {
        info!(
            nodes = self.registered(),
            running = self.running(),
            "simulation"
        );
    }
}

/// The allocation stored in `kv`, if it decodes (a simulated node skips the others).
fn decode(kv: &KeyValue) -> Option<Allocation> {
    codec::decode::<Allocation>(&kv.key, &kv.value).ok()
}
