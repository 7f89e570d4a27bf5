//! Leader election through etcd: the leader key `election/scheduler` is created under the
//! candidate's lease. Its create revision identifies one term of leadership, and every
//! leader write compares it (see [`Leadership::fence`]), so a deposed leader cannot write.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::info;
use uni_core::store::keys::{ElectionKey, TypedKey};
use uni_core::store::{
    Compare, CompareOp, CompareTarget, EventKind, KvStore, LeaseKeeper, Revision, Txn, TxnOp,
    TxnOpResult,
};
use uni_core::{Error, Result};

/// One term of leadership.
pub struct Leadership {
    pub key: String,
    /// Create revision of the leader key: the fencing token.
    pub term: Revision,
    keeper: LeaseKeeper,
}

impl Leadership {
    /// The compare that makes a transaction a leader write.
    pub fn fence(&self) -> Compare {
        Compare {
            key: self.key.clone(),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(self.term),
        }
    }

    /// Cancelled when the lease behind this term is gone.
    pub fn lost(&self) -> CancellationToken {
        self.keeper.lost()
    }

    /// Gives up leadership at once, so another replica need not wait for the lease to expire.
    pub async fn resign(self, store: &Arc<dyn KvStore>) {
        let txn = Txn::new()
            .when([self.fence()])
            .and_then([TxnOp::delete(self.key.clone())]);
        let _ = store.txn(txn).await;
        let _ = self.keeper.revoke().await;
    }
}

pub fn election_key() -> String {
    // A fixed, valid segment: building the key cannot fail.
    ElectionKey {
        name: "scheduler".to_string(),
    }
    .format()
}

/// Campaigns until this replica leads (or `cancel` fires, giving `Err(Unavailable)`).
pub async fn campaign(
    store: &Arc<dyn KvStore>,
    identity: &str,
    ttl: Duration,
    cancel: &CancellationToken,
) -> Result<Leadership> {
    let key = election_key();
    loop {
        let keeper = LeaseKeeper::grant(store.clone(), ttl).await?;
        let lost = keeper.lost();
        loop {
            let txn = Txn::new()
                .when([Compare::absent(key.clone())])
                .and_then([TxnOp::Put {
                    key: key.clone(),
                    value: identity.as_bytes().to_vec(),
                    lease: keeper.id(),
                }])
                .or_else([TxnOp::get(key.clone())]);
            let resp = store.txn(txn).await?;
            if resp.succeeded {
                info!(identity, term = resp.revision, "elected leader");
                return Ok(Leadership {
                    key,
                    term: resp.revision,
                    keeper,
                });
            }
            let holder = match resp.results.first() {
                Some(TxnOpResult::Get(Some(kv))) => kv.clone(),
                // Deleted between the compare and the get: try again.
                _ => continue,
            };
            // Wait for the holder's key to go, watching from just after its last write.
            let mut watch = store.watch(&key, holder.mod_revision + 1).await?;
            let deleted = async {
                while let Some(batch) = watch.next().await {
                    if batch?.iter().any(|e| e.kind == EventKind::Delete) {
                        return Ok(());
                    }
                }
                Err(Error::Unavailable("election watch ended".into()))
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = keeper.revoke().await;
                    return Err(Error::Unavailable("campaign cancelled".into()));
                }
                // Our own lease lapsed while waiting (etcd unreachable): start over.
                _ = lost.cancelled() => break,
                r = deleted => r?,
            }
        }
    }
}
