//! Group commit for creates: concurrent CreateWorkload calls are written in one etcd
//! transaction (each key compared absent), so submission keeps up with the scheduler instead
//! of paying one consensus round per object. A batch whose compares fail (a name already
//! taken, or the same name twice) falls back to one transaction per create, so each caller
//! gets its own answer. An idle server sends a lone create at once: batching adds no delay.
//!
//! A batch whose outcome is unknown (the store failed to answer, perhaps after applying it)
//! falls back the same way, and a create whose key holds an object with its own uid (fresh
//! for every create) is the caller's own: it is reported created, not AlreadyExists.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uni_core::store::{Compare, KvStore, Revision, Txn, TxnOp, TxnOpResult};
use uni_core::{Error, Result};

/// etcd's default `--max-txn-ops` is 128.
const MAX_BATCH: usize = 64;
/// Batches written at once; more hides etcd's latency, fewer keeps batches large.
const IN_FLIGHT: usize = 4;

struct Pending {
    key: String,
    value: Vec<u8>,
    /// The write's revision, or `None` when the key already exists.
    reply: oneshot::Sender<Result<Option<Revision>>>,
}

#[derive(Clone)]
pub struct CreateBatcher {
    tx: mpsc::Sender<Pending>,
}

impl CreateBatcher {
    /// Starts the batching task; it ends when `shutdown` fires or every handle is dropped.
    pub fn spawn(store: Arc<dyn KvStore>, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, rx, shutdown));
        Self { tx }
    }

    /// Creates `key` if absent; `Ok(None)` when it already exists.
    pub async fn create(&self, key: String, value: Vec<u8>) -> Result<Option<Revision>> {
        let (reply, rx) = oneshot::channel();
        let closed = || Error::Unavailable("server is shutting down".into());
        self.tx
            .send(Pending { key, value, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

async fn run(
    store: Arc<dyn KvStore>,
    mut rx: mpsc::Receiver<Pending>,
    shutdown: CancellationToken,
) {
    let mut writes = JoinSet::new();
    loop {
        while writes.len() >= IN_FLIGHT {
            writes.join_next().await;
        }
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = rx.recv() => match p { Some(p) => p, None => break },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        writes.spawn(write(store.clone(), batch));
    }
    while writes.join_next().await.is_some() {}
}

async fn write(store: Arc<dyn KvStore>, batch: Vec<Pending>) {
    if batch.len() > 1 {
        let txn = Txn::new()
            .when(batch.iter().map(|p| Compare::absent(p.key.clone())))
            .and_then(
                batch
                    .iter()
                    .map(|p| TxnOp::put(p.key.clone(), p.value.clone())),
            );
        if let Ok(resp) = store.txn(txn).await {
            if resp.succeeded {
                for p in batch {
                    let _ = p.reply.send(Ok(Some(resp.revision)));
                }
                return;
            }
        }
    }
    // One create at a time: each caller learns about its own key.
    let mut singles = JoinSet::new();
    for p in batch {
        let store = store.clone();
        singles.spawn(async move {
            let txn = Txn::new()
                .when([Compare::absent(p.key.clone())])
                .and_then([TxnOp::put(p.key.clone(), p.value.clone())])
                .or_else([TxnOp::get(p.key)]);
            let result = store.txn(txn).await.map(|r| {
                if r.succeeded {
                    return Some(r.revision);
                }
                match r.results.first() {
                    // The batch landed after all: the stored object is this create's.
                    Some(TxnOpResult::Get(Some(kv))) if same_uid(&kv.value, &p.value) => {
                        Some(kv.create_revision)
                    }
                    _ => None,
                }
            });
            let _ = p.reply.send(result);
        });
    }
    while singles.join_next().await.is_some() {}
}

/// Whether two stored objects carry the same (non-empty) `meta.uid`.
fn same_uid(stored: &[u8], ours: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        uid: String,
    }
    #[derive(serde::Deserialize)]
    struct Object {
        meta: Meta,
    }
    let uid = |b: &[u8]| serde_json::from_slice::<Object>(b).ok().map(|o| o.meta.uid);
    matches!((uid(stored), uid(ours)), (Some(a), Some(b)) if !a.is_empty() && a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use uni_core::store::EmbeddedStore;
    use uni_core::testing::{Faults, FaultyStore};

    /// Answers the next multi-key transaction with an error after applying it, as when etcd
    /// commits and the reply is lost: a fault the real store cannot be made to give.
    struct LostReply(AtomicBool);

    impl Faults for LostReply {
        fn after_txn(&self, txn: &Txn) -> Result<()> {
            if txn.success.len() > 1 && self.0.swap(false, Ordering::SeqCst) {
                return Err(Error::Unavailable("deadline exceeded".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_applied_but_unanswered_reports_each_create_as_created() {
        let obj = |uid: &str| format!(r#"{{"meta":{{"uid":"{uid}"}},"spec":{{}}}}"#).into_bytes();
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = EmbeddedStore::open(dir.path().join("db"))
            .await
            .expect("open");
        inner.put("k/taken", obj("theirs"), 0).await.expect("put");
        let store = Arc::new(FaultyStore {
            inner: Arc::new(inner),
            faults: LostReply(AtomicBool::new(true)),
        });
        // Two creates in one batch, written directly so that they are batched for sure.
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        let batch = vec![
            Pending {
                key: "k/a".into(),
                value: obj("a-1"),
                reply: a,
            },
            Pending {
                key: "k/b".into(),
                value: obj("b-2"),
                reply: b,
            },
        ];
        write(store.clone(), batch).await;
        let created = |r: Result<Option<Revision>>| r.expect("answered").is_some();
        assert!(
            created(ra.await.expect("reply")),
            "a was created by this call"
        );
        assert!(
            created(rb.await.expect("reply")),
            "b was created by this call"
        );
        // A name taken by someone else is still AlreadyExists.
        let (c, rc) = oneshot::channel();
        let taken = Pending {
            key: "k/taken".into(),
            value: obj("mine"),
            reply: c,
        };
        write(store.clone(), vec![taken]).await;
        assert_eq!(rc.await.expect("reply").expect("answered"), None);
    }
}
