//! Group commit for creates: concurrent CreateWorkload calls are written in one etcd
//! transaction (each key compared absent), so submission keeps up with the scheduler instead
//! of paying one consensus round per object. A batch whose compares fail (a name already
//! taken, or the same name twice) falls back to one transaction per create, so each caller
//! gets its own answer. An idle server sends a lone create at once: batching adds no delay.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uni_core::store::{Compare, KvStore, Revision, Txn, TxnOp};
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
                .and_then([TxnOp::put(p.key, p.value)]);
            let result = store
                .txn(txn)
                .await
                .map(|r| r.succeeded.then_some(r.revision));
            let _ = p.reply.send(result);
        });
    }
    while singles.join_next().await.is_some() {}
}
