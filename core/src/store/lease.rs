//! Keeps a lease alive in the background: what agents and scheduler replicas use to stay
//! registered. The keeper owns its task; dropping or stopping it cancels the task.

use std::sync::{Arc, Mutex};
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
    /// When the lease expires unless renewed again, by this process's clock.
    expires: Arc<Mutex<Instant>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and renews it every third of its TTL.
    pub async fn grant(store: Arc<dyn KvStore>, ttl: Duration) -> Result<Self> {
        let id = store.lease_grant(ttl).await?;
        let lost = CancellationToken::new();
        let cancel = CancellationToken::new();
        let expires = Arc::new(Mutex::new(Instant::now() + ttl));
        let task = tokio::spawn(renew(
            store.clone(),
            id,
            ttl,
            lost.clone(),
            expires.clone(),
            cancel.clone(),
        ));
        Ok(Self {
            id,
            store,
            lost,
            expires,
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

    /// When the lease expires (or expired) unless renewed: the last renewal's answer plus the
    /// TTL it granted, by this process's clock, which is no earlier than the store's expiry.
    pub fn expires(&self) -> Instant {
        *self.expires.lock().unwrap_or_else(|p| p.into_inner())
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
    shared_expiry: Arc<Mutex<Instant>>,
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
        // A keep-alive that hangs (a partition) must not delay noticing the expiry.
        let deadline = expires.max(Instant::now() + Duration::from_millis(100));
        let answer = tokio::time::timeout_at(deadline, store.lease_keep_alive(id))
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("lease keep-alive timed out".into())));
        match answer {
            Ok(granted) => {
                expires = Instant::now() + granted;
                *shared_expiry.lock().unwrap_or_else(|p| p.into_inner()) = expires;
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
