//! Writes replica statuses to `status/{ns}/{name}/{replica}`. Updates are coalesced per key
//! (only the latest matters) and retried until the store takes them, so a store outage delays
//! reports but loses none. A status held by another, still existing allocation of the same
//! replica is never overwritten or deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uni_core::model::ReplicaStatus;
use uni_core::store::keys::{AllocationKey, StatusKey, TypedKey};
use uni_core::store::{codec, Compare, CompareOp, KvStore, Txn, TxnOp};
use uni_core::Backoff;

use crate::error::Result;

/// Between failed flushes.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
const CAS_ATTEMPTS: usize = 5;
/// Status writes in flight at once.
const CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
enum Op {
    Put(ReplicaStatus),
    Delete { allocation_id: String },
}

#[derive(Clone, Default)]
pub struct StatusReporter {
    pending: Arc<Mutex<HashMap<String, Op>>>,
    notify: Arc<Notify>,
}

impl StatusReporter {
    pub fn set(&self, key: &StatusKey, status: ReplicaStatus) {
        self.push(key, Op::Put(status));
    }

    /// Deletes the status if it is still the one of `allocation_id`.
    pub fn delete(&self, key: &StatusKey, allocation_id: &str) {
        self.push(
            key,
            Op::Delete {
                allocation_id: allocation_id.to_string(),
            },
        );
    }

    fn push(&self, key: &StatusKey, op: Op) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(key.format(), op);
        }
        self.notify.notify_one();
    }

    /// Writes pending updates until cancelled; then tries once more to flush.
    pub async fn run(self, store: Arc<dyn KvStore>, cancel: CancellationToken) {
        let mut backoff = RETRY;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.notify.notified() => {}
            }
            loop {
                if self.flush_once(&*store).await {
                    backoff.reset();
                    break;
                }
                if !backoff.wait(&cancel).await {
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.flush_once(&*store)).await;
    }

    /// Writes everything pending; false when something failed and was put back.
    async fn flush_once(&self, store: &dyn KvStore) -> bool {
        let batch: Vec<(String, Op)> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return true,
        };
        let failed: Vec<(String, Op)> = stream::iter(batch)
            .map(|(key, op)| async move {
                match write(store, &key, &op).await {
                    Ok(()) => None,
                    Err(e) => {
                        debug!(key = %key, error = %e, "status write failed; will retry");
                        Some((key, op))
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        let ok = failed.is_empty();
        if let Ok(mut p) = self.pending.lock() {
            for (key, op) in failed {
                // A newer update for the key wins over the failed one.
                p.entry(key).or_insert(op);
            }
        }
        ok
    }

    /// Whether nothing is waiting to be written (tests, shutdown).
    pub fn idle(&self) -> bool {
        self.pending.lock().map(|p| p.is_empty()).unwrap_or(true)
    }
}

async fn write(store: &dyn KvStore, key: &str, op: &Op) -> Result<()> {
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(key).await?;
        let mut compares = vec![match &current {
            Some(kv) => Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision),
            None => Compare::absent(key),
        }];
        let held_by = current
            .as_ref()
            .and_then(|kv| codec::decode::<ReplicaStatus>(key, &kv.value).ok());
        let txn = match op {
            Op::Put(status) => {
                if let Some(other) = held_by.filter(|s| s.allocation_id != status.allocation_id) {
                    // Overwrite another allocation's status only once that allocation is gone.
                    if let Ok(k) =
                        AllocationKey::new(other.node.as_str(), other.allocation_id.as_str())
                    {
                        compares.push(Compare::absent(k.format()));
                    }
                }
                let value = codec::encode(status)?;
                Txn::new().when(compares).and_then([TxnOp::put(key, value)])
            }
            Op::Delete { allocation_id } => {
                if current.is_none() || held_by.is_some_and(|s| &s.allocation_id != allocation_id) {
                    return Ok(());
                }
                Txn::new().when(compares).and_then([TxnOp::delete(key)])
            }
        };
        if store.txn(txn).await?.succeeded {
            return Ok(());
        }
        // Lost a race, or another live allocation holds the key: look again.
        let still_other = store
            .get(key)
            .await?
            .and_then(|kv| codec::decode::<ReplicaStatus>(key, &kv.value).ok())
            .is_some_and(|s| match op {
                Op::Put(mine) => s.allocation_id != mine.allocation_id,
                Op::Delete { .. } => false,
            });
        if still_other {
            warn!(
                key,
                "status belongs to another live allocation; not overwritten"
            );
            return Ok(());
        }
    }
    Ok(())
}
