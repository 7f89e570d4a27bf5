//! The watch-fed cache every scheduler replica keeps, so that followers stay warm and the
//! leader schedules from memory. It lists the key space once, then follows one watch; if
//! the watch's history is compacted away it lists again.

mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::store::keys::ROOT;
use uni_core::store::{EventKind, KvStore, RangeOptions, Revision, WatchEvent};
use uni_core::{Error, Result};

pub use state::{workload_ref, State, Stored};

const LIST_PAGE: usize = 1000;

pub struct Cache {
    state: Mutex<State>,
    applied: watch::Sender<Revision>,
    /// Woken after every applied batch; the scheduling loop waits on it.
    changed: Notify,
    /// Asks the sync loop to drop its picture and list again.
    resync: Notify,
}

impl Cache {
    pub fn new(catalog: Arc<Catalog>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::new(catalog)),
            applied: watch::Sender::new(0),
            changed: Notify::new(),
            resync: Notify::new(),
        })
    }

    /// The current picture. Hold the guard briefly: the watch waits for it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once changes up to `revision` are applied (read-your-writes after a write),
    /// or after `timeout`; returns whether the cache caught up.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn revision(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Resolves at the next applied change.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub fn notify(&self) {
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// Rebuilds the picture from etcd, e.g. after a leader's uncommitted reservations.
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// Keeps the cache current until cancelled.
    pub async fn run(self: Arc<Self>, store: Arc<dyn KvStore>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.sync(&store) => r,
                _ = self.resync.notified() => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
            };
            match result {
                Err(Error::Compacted { .. }) => {
                    info!("cache: watch history compacted; listing again")
                }
                Err(e) => warn!(error = %e, "cache: sync failed; retrying"),
                Ok(()) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Lists everything, then follows the watch until it fails.
    async fn sync(&self, store: &Arc<dyn KvStore>) -> Result<()> {
        // Listing pages may see newer data than `start`; the watch from `start + 1` replays
        // those changes and the state ignores what it already holds, so nothing is missed.
        let start = store.revision().await?;
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .range(
                    ROOT,
                    RangeOptions {
                        start_after: after.take(),
                        limit: Some(LIST_PAGE),
                    },
                )
                .await?;
            after = page.kvs.last().map(|kv| kv.key.clone());
            listed.extend(page.kvs.into_iter().map(|kv| WatchEvent {
                kind: EventKind::Put,
                kv,
            }));
            if !page.more {
                break;
            }
        }
        let mut watch = store.watch(ROOT, start + 1).await?;
        {
            let mut state = self.lock();
            state.reset();
            self.apply_all(&mut state, &listed);
            state.revision = state.revision.max(start);
            self.publish(&state);
        }
        info!(keys = listed.len(), revision = start, "cache: listed");
        while let Some(batch) = watch.next().await {
            let batch = batch?;
            let mut state = self.lock();
            self.apply_all(&mut state, &batch);
            self.publish(&state);
        }
        Err(Error::Unavailable("watch ended".into()))
    }

    fn apply_all(&self, state: &mut State, events: &[WatchEvent]) {
        for e in events {
            if let Err(err) = state.apply(e) {
                // One undecodable value must not stop the cluster; it is reported and skipped.
                warn!(key = %e.kv.key, error = %err, "cache: skipping bad value");
            }
        }
    }

    fn publish(&self, state: &State) {
        self.applied.send_replace(state.revision);
        self.notify();
    }
}
