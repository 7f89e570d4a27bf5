//! The embedded store's background task: expires leases and compacts old history.
//! It is owned by the store, which cancels and joins it on close.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{lock, Inner};
use crate::store::Revision;
use crate::Error;

pub(super) async fn run(inner: Weak<Inner>, cancel: CancellationToken) {
    let Some(interval) = inner.upgrade().map(|i| i.opts.compaction_interval) else {
        return;
    };
    let mut next_compaction = Instant::now() + interval;
    // (when, revision) seen at each compaction: the revision history_age ago.
    let mut seen: VecDeque<(Instant, Revision)> = VecDeque::new();
    loop {
        let Some(store) = inner.upgrade() else { return };
        expire_leases(&store).await;
        let now = Instant::now();
        if now >= next_compaction {
            seen.push_back((now, store.current()));
            let mut by_age = 0;
            while let Some(&(at, rev)) = seen.front() {
                if now.duration_since(at) < store.opts.history_age {
                    break;
                }
                by_age = rev;
                seen.pop_front();
            }
            auto_compact(&store, by_age).await;
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

/// Compacts to the newest of: `history_revisions` back, `history_bytes` of values back, and
/// `by_age` (the revision seen `history_age` ago).
async fn auto_compact(store: &Arc<Inner>, by_age: Revision) {
    let s = store.clone();
    let done = tokio::task::spawn_blocking(move || {
        let by_count = s.current() - s.opts.history_revisions;
        let by_bytes = s.keep_within_bytes(s.opts.history_bytes)?;
        let target = by_count.max(by_bytes).max(by_age).min(s.current());
        if target <= s.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        s.compact(target)
    })
    .await;
    if let Ok(Err(e)) = done {
        warn!(error = %e, "automatic compaction failed");
    }
}
