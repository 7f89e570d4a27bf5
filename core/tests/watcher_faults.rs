//! The list-and-watch helper under faults a real store will not produce on demand: a watch that
//! ends, and history compacted between the list and the watch. A thin wrapper over a real
//! embedded store cuts its watches when told to; everything else is the real store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uni_core::store::watcher::Event;
use uni_core::store::{EmbeddedStore, KvStore, Revision, WatchStream, Watcher};
use uni_core::testing::{Faults, FaultyStore};
use uni_core::{Backoff, Error, Result};

const WAIT: Duration = Duration::from_secs(20);

/// Ends every open watch, when `cut` is called, with the error `compacted` names.
struct Cuttable {
    cut: Mutex<CancellationToken>,
    compacted: bool,
}

impl Cuttable {
    fn cut(&self) {
        let mut c = self.cut.lock().unwrap();
        c.cancel();
        *c = CancellationToken::new();
    }
}

impl Faults for Cuttable {
    fn watch(&self, stream: WatchStream, from: Revision) -> WatchStream {
        let cut = self.cut.lock().unwrap().clone();
        let fault = if self.compacted {
            Error::Compacted {
                requested: from,
                compact_revision: from + 1,
            }
        } else {
            Error::Unavailable("connection reset".into())
        };
        let ended = futures::stream::once(async move {
            cut.cancelled().await;
            Err(fault)
        });
        Box::pin(futures::stream::select(stream, ended))
    }
}

type Store = FaultyStore<Cuttable>;

async fn store(compacted: bool) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let inner = EmbeddedStore::open(dir.path().join("s.redb"))
        .await
        .unwrap();
    let s = Arc::new(FaultyStore {
        inner: Arc::new(inner),
        faults: Cuttable {
            cut: Mutex::new(CancellationToken::new()),
            compacted,
        },
    });
    (dir, s)
}

async fn next(w: &mut Watcher) -> Result<Vec<Event>> {
    tokio::time::timeout(WAIT, w.next())
        .await
        .expect("watcher answered in time")
}

fn listed(events: &[Event]) -> Vec<String> {
    match events {
        [Event::Restarted { kvs, .. }] => kvs.iter().map(|kv| kv.key.clone()).collect(),
        other => panic!("expected one Restarted, got {other:?}"),
    }
}

/// After its watch fails, the watcher reports the error once, then lists again: what changed
/// while it was cut off (a write and a delete) is in the new list.
#[tokio::test]
async fn a_failed_watch_is_reported_once_then_listed_again() {
    for compacted in [false, true] {
        let (_dir, s) = store(compacted).await;
        s.put("/p/a", vec![1], 0).await.unwrap();
        s.put("/p/b", vec![2], 0).await.unwrap();
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        let mut w = Watcher::new(s.clone(), "/p/").backoff(backoff);
        assert_eq!(listed(&next(&mut w).await.unwrap()), ["/p/a", "/p/b"]);

        s.faults.cut();
        let err = next(&mut w).await.unwrap_err();
        assert_eq!(matches!(err, Error::Compacted { .. }), compacted, "{err}");
        s.delete("/p/a").await.unwrap();
        s.put("/p/c", vec![3], 0).await.unwrap();
        assert_eq!(listed(&next(&mut w).await.unwrap()), ["/p/b", "/p/c"]);

        // And it follows live changes again.
        s.put("/p/d", vec![4], 0).await.unwrap();
        match next(&mut w).await.unwrap().as_slice() {
            [Event::Applied(kv)] => assert_eq!(kv.key, "/p/d"),
            other => panic!("expected the write to /p/d, got {other:?}"),
        }
    }
}

/// A call dropped mid-way (as in a `select!` that took another branch) loses nothing.
#[tokio::test]
async fn next_is_cancel_safe() {
    let (_dir, s) = store(false).await;
    let mut w = Watcher::new(s.clone(), "/p/");
    assert!(listed(&next(&mut w).await.unwrap()).is_empty());
    // Nothing pending: the call is dropped while it waits on the watch.
    assert!(tokio::time::timeout(Duration::from_millis(20), w.next())
        .await
        .is_err());
    s.put("/p/a", vec![1], 0).await.unwrap();
    match next(&mut w).await.unwrap().as_slice() {
        [Event::Applied(kv)] => assert_eq!(kv.key, "/p/a"),
        other => panic!("expected the write to /p/a, got {other:?}"),
    }
}
