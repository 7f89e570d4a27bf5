//! Commits the leader's decisions to etcd: allocation writes in batches, each batch one
//! transaction fenced on the leader key, several batches in flight to hide etcd's latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::debug;
use uni_core::model::Allocation;
use uni_core::store::keys::{AllocationKey, TypedKey};
use uni_core::store::{codec, Compare, CompareTarget, KvStore, Txn, TxnOp, TxnOpResult};
use uni_core::{Error as CoreError, Result as CoreResult};

use super::pass::Plan;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// etcd's default `--max-txn-ops` is 128; one slot is the fence.
const MAX_OPS_PER_TXN: usize = 127;

/// What a finished commit reports back.
pub struct Committed {
    /// Allocations now persisted, with their workload's creation time (unix millis).
    pub placed: Vec<(Allocation, i64)>,
}

pub struct Committer {
    store: Arc<dyn KvStore>,
    fence: Compare,
    metrics: Arc<Metrics>,
    max_in_flight: usize,
    tasks: JoinSet<Result<Committed>>,
}

pub fn allocation_key(a: &Allocation) -> String {
    AllocationKey {
        node: a.node.clone(),
        id: a.id.clone(),
    }
    .format()
}

impl Committer {
    pub fn new(
        store: Arc<dyn KvStore>,
        fence: Compare,
        metrics: Arc<Metrics>,
        max_in_flight: usize,
    ) -> Self {
        Self {
            store,
            fence,
            metrics,
            max_in_flight: max_in_flight.max(1),
            tasks: JoinSet::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Queues a plan's writes; waits for room when the pipeline is full.
    pub async fn submit(&mut self, plan: Plan) -> Result<Vec<Committed>> {
        let mut done = Vec::new();
        let mut placed = plan.puts.into_iter();
        let mut deletes = plan.deletes.into_iter();
        loop {
            let mut ops = Vec::new();
            let mut batch = Vec::new();
            for a in deletes.by_ref().take(MAX_OPS_PER_TXN) {
                ops.push(TxnOp::delete(allocation_key(&a)));
            }
            while ops.len() < MAX_OPS_PER_TXN {
                let Some((a, created)) = placed.next() else {
                    break;
                };
                ops.push(TxnOp::put(allocation_key(&a), codec::encode(&a)?));
                batch.push((a, created));
            }
            if ops.is_empty() {
                break;
            }
            let txn = Txn::new().when([self.fence.clone()]).and_then(ops);
            done.extend(self.spawn(txn, batch).await?);
        }
        for txn in plan.singles {
            let txn = Txn {
                compares: std::iter::once(self.fence.clone())
                    .chain(txn.compares)
                    .collect(),
                ..txn
            };
            done.extend(self.spawn(txn, Vec::new()).await?);
        }
        Ok(done)
    }

    async fn spawn(&mut self, txn: Txn, placed: Vec<(Allocation, i64)>) -> Result<Vec<Committed>> {
        let mut done = Vec::new();
        while self.tasks.len() >= self.max_in_flight {
            if let Some(c) = self.next().await {
                done.push(c?);
            }
        }
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let term = self.fence.target.clone();
        let txn = txn.or_else([TxnOp::get(self.fence.key.clone())]);
        self.tasks.spawn(async move {
            let start = Instant::now();
            let resp = with_retry(|| store.txn(txn.clone())).await?;
            metrics
                .commit_duration
                .observe(start.elapsed().as_secs_f64());
            // On failure the `or_else` branch read the leader key: if our term still holds,
            // only the write's own compare lost, and the next reconcile retries it.
            let still_leader = |r: &TxnOpResult| match (r, &term) {
                (TxnOpResult::Get(Some(kv)), CompareTarget::CreateRevision(t)) => {
                    kv.create_revision == *t
                }
                _ => false,
            };
            if resp.succeeded {
                Ok(Committed { placed })
            } else if resp.results.first().is_some_and(still_leader) {
                Ok(Committed { placed: Vec::new() })
            } else {
                Err(Error::NotLeader)
            }
        });
        Ok(done)
    }

    /// The next finished commit, or `None` when nothing is in flight.
    pub async fn next(&mut self) -> Option<Result<Committed>> {
        let joined = self.tasks.join_next().await?;
        Some(joined.unwrap_or_else(|e| {
            Err(Error::Core(CoreError::Internal(format!(
                "commit task: {e}"
            ))))
        }))
    }

    /// Waits for every commit in flight.
    pub async fn drain(&mut self) -> Result<Vec<Committed>> {
        let mut done = Vec::new();
        while let Some(c) = self.next().await {
            done.push(c?);
        }
        Ok(done)
    }
}

/// Retries while etcd is unavailable; the lease keeper ends leadership if that lasts too long.
async fn with_retry<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CoreResult<T>>,
{
    let mut backoff = Duration::from_millis(20);
    loop {
        match f().await {
            Err(CoreError::Unavailable(m)) => {
                debug!(error = %m, "commit: etcd unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other.map_err(Error::from),
        }
    }
}
