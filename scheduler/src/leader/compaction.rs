//! Leader-only compaction of the store's history, as kube-apiserver does it: every interval,
//! compact to the revision seen one interval before, so watchers keep one interval of history
//! to resume from and etcd's database stops growing with every write ever made.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uni_core::store::{KvStore, Revision};
use uni_core::Error as CoreError;

use crate::metrics::Metrics;

/// Compacts every `interval` until `cancel` fires; a zero interval does nothing.
pub async fn run(
    store: Arc<dyn KvStore>,
    metrics: Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut previous: Option<Revision> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let current = match store.revision().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "compaction: cannot read the store revision");
                continue;
            }
        };
        if let Some(target) = previous.filter(|&r| r > 0) {
            match store.compact(target).await {
                Ok(()) => {
                    metrics.compacted_revision.set(target);
                    info!(revision = target, "compacted store history");
                }
                // etcd's own auto-compaction (or another leader) got there first.
                Err(CoreError::Compacted { .. }) => debug!(revision = target, "already compacted"),
                Err(e) => warn!(revision = target, error = %e, "compaction failed"),
            }
        }
        previous = Some(current);
    }
}
