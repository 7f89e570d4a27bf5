//! The embedded store's background task: expires leases and compacts old history.
//! It is owned by the store, which cancels and joins it on close.

use std::sync::{Arc, Weak};

use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{lock, Inner};
use crate::Error;

pub(super) async fn run(inner: Weak<Inner>, cancel: CancellationToken) {
    let Some(interval) = inner.upgrade().map(|i| i.opts.compaction_interval) else {
        return;
    };
    let mut next_compaction = Instant::now() + interval;
    loop {
        let Some(store) = inner.upgrade() else { return };
        expire_leases(&store).await;
        let now = Instant::now();
        if now >= next_compaction {
            auto_compact(&store).await;
            next_compaction = now + interval;
        }
        let wake = lock(&store.leases)
            .values()
            .map(|l| l.deadline)
            .min()
            .map_or(next_compaction, |d| d.min(next_compaction));
        let changed = store.leases_changed.notified();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep_until(wake) => {}
            _ = changed => {}
        }
    }
}

async fn expire_leases(store: &Arc<Inner>) {
    let now = Instant::now();
    let expired: Vec<_> = lock(&store.leases)
        .iter()
        .filter(|(_, l)| l.deadline <= now)
        .map(|(id, _)| *id)
        .collect();
    for id in expired {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.revoke(id)).await {
            Ok(Ok(())) | Ok(Err(Error::LeaseNotFound(_))) => {}
            Ok(Err(e)) => warn!(lease = id, error = %e, "expiring lease failed; will retry"),
            Err(e) => warn!(lease = id, error = %e, "expiring lease panicked"),
        }
    }
}

async fn auto_compact(store: &Arc<Inner>) {
    let target = store.current() - store.opts.history_revisions;
    if target <= store.compacted.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let s = store.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.compact(target)).await {
        warn!(error = %e, "automatic compaction failed");
    }
}
