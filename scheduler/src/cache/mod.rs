//! The watch-fed cache every scheduler replica keeps, so that followers stay warm and the
//! leader schedules from memory. It lists the key space once, then follows one watch; if
//! the watch's history is compacted away it lists again (`uni_core::store::Watcher`).

mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::store::keys::ROOT;
use uni_core::store::watcher::Event;
use uni_core::store::{EventKind, KvStore, Revision, WatchEvent, Watcher};
use uni_core::Error;

pub use state::{State, Stored};

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
        let mut watcher = Watcher::new(store, ROOT).page_size(LIST_PAGE);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.resync.notified() => {
                    watcher.restart();
                    continue;
                }
                next = watcher.next() => next,
            };
            match next {
                Ok(events) => self.apply(events),
                Err(Error::Compacted { .. }) => {
                    info!("cache: watch history compacted; listing again")
                }
                Err(e) => warn!(error = %e, "cache: sync failed; retrying"),
            }
        }
    }

    /// Applies one batch under one lock: a fresh listing replaces the picture.
    fn apply(&self, events: Vec<Event>) {
        let mut state = self.lock();
        for e in events {
            let (kind, kv) = match e {
                Event::Restarted { kvs, revision } => {
                    // Listing pages may see newer data than `revision`; the watch from
                    // `revision + 1` replays those changes and the state ignores what it
                    // already holds, so nothing is missed.
                    info!(keys = kvs.len(), revision, "cache: listed");
                    state.reset();
                    for kv in kvs {
                        self.apply_one(
                            &mut state,
                            WatchEvent {
                                kind: EventKind::Put,
                                kv,
                            },
                        );
                    }
                    state.listed_at(revision);
                    continue;
                }
                Event::Applied(kv) => (EventKind::Put, kv),
                Event::Deleted(kv) => (EventKind::Delete, kv),
            };
            self.apply_one(&mut state, WatchEvent { kind, kv });
        }
        self.publish(&state);
    }

    fn apply_one(&self, state: &mut State, e: WatchEvent) {
        if let Err(err) = state.apply(&e) {
            // One undecodable value must not stop the cluster; it is reported and skipped.
            warn!(key = %e.kv.key, error = %err, "cache: skipping bad value");
        }
    }

    fn publish(&self, state: &State) {
        self.applied.send_replace(state.revision());
        self.notify();
    }
}
