//! Keeps a lease alive in the background: what agents and scheduler replicas use to stay
//! registered. The keeper owns its task; dropping or stopping it cancels the task.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{KvStore, LeaseId};
use crate::{Error, Result};

pub struct LeaseKeeper {
    id: LeaseId,
    store: Arc<dyn KvStore>,
    lost: CancellationToken,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and renews it every third of its TTL.
    pub async fn grant(store: Arc<dyn KvStore>, ttl: Duration) -> Result<Self> {
        let id = store.lease_grant(ttl).await?;
        let lost = CancellationToken::new();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(renew(store.clone(), id, ttl, lost.clone(), cancel.clone()));
        Ok(Self {
            id,
            store,
            lost,
            cancel,
            task: Some(task),
        })
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// Cancelled once the lease is known to be gone (expired or revoked elsewhere).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and revokes the lease, deleting its keys at once.
    pub async fn revoke(mut self) -> Result<()> {
        self.stop_task().await;
        self.store.lease_revoke(self.id).await
    }

    async fn stop_task(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn renew(
    store: Arc<dyn KvStore>,
    id: LeaseId,
    ttl: Duration,
    lost: CancellationToken,
    cancel: CancellationToken,
) {
    let period = ttl / 3;
    let mut expires = Instant::now() + ttl;
    let mut next = Instant::now() + period;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        match store.lease_keep_alive(id).await {
            Ok(granted) => {
                expires = Instant::now() + granted;
                next = Instant::now() + granted / 3;
            }
            Err(Error::LeaseNotFound(_)) => {
                lost.cancel();
                return;
            }
            Err(e) => {
                debug!(lease = id, error = %e, "lease keep-alive failed; retrying");
                if Instant::now() >= expires {
                    // The store may still hold the lease, but nobody can rely on it now.
                    lost.cancel();
                }
                next = Instant::now() + (period / 4).max(Duration::from_millis(100));
            }
        }
    }
}
