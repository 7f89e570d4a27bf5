//! An etcd watch that survives reconnects: it resumes from the revision after the last one it
//! delivered, so a restart of etcd or a broken connection leaves no gap. When the history it
//! needs has been compacted it ends with [`Error::Compacted`].

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::convert::{from_kv, map_err};
use crate::store::{EventKind, Revision, WatchEvent, WatchStream};
use crate::{Error, Result};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Largest watch response accepted. A watcher that fell behind catches up in responses of up
/// to 1,000 revisions, each maybe a batched transaction of a hundred objects: far over the
/// 4 MiB gRPC default, which would fail the stream, resume at the same revision and fail again
/// forever.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// Starts the watch task; it stops when the returned stream is dropped.
pub(super) fn spawn(client: Client, prefix: String, from: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let closed = tx.clone();
        tokio::select! {
            _ = closed.closed() => {}
            _ = run(client, prefix, from, tx) => {}
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

type Sender = mpsc::Sender<Result<Vec<WatchEvent>>>;

async fn run(client: Client, prefix: String, mut next: Revision, tx: Sender) {
    let mut backoff = Duration::from_millis(50);
    let mut watcher = client
        .watch_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    loop {
        let opts = WatchOptions::new().with_prefix().with_start_revision(next);
        match watcher.watch(prefix.as_str(), Some(opts)).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            let _ = tx
                                .send(Err(Error::Compacted {
                                    requested: next,
                                    compact_revision: resp.compact_revision(),
                                }))
                                .await;
                            return;
                        }
                        if resp.canceled() {
                            debug!(
                                reason = resp.cancel_reason(),
                                "etcd cancelled watch; resuming"
                            );
                            break;
                        }
                        backoff = Duration::from_millis(50);
                        if resp.events().is_empty() {
                            continue;
                        }
                        let batch = match convert(resp.events()) {
                            Ok(b) => b,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        };
                        if let Some(last) = batch.last() {
                            next = last.kv.mod_revision + 1;
                        }
                        if tx.send(Ok(batch)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %map_err(e), revision = next, "etcd watch broke; resuming");
                        break;
                    }
                }
            },
            Err(e) => match map_err(e) {
                Error::Unavailable(m) => debug!(error = %m, "etcd watch: unavailable; retrying"),
                other => {
                    let _ = tx.send(Err(other)).await;
                    return;
                }
            },
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn convert(events: &[etcd_client::Event]) -> Result<Vec<WatchEvent>> {
    events
        .iter()
        .filter_map(|e| e.kv().map(|kv| (e.event_type(), kv)))
        .map(|(t, kv)| {
            Ok(WatchEvent {
                kind: match t {
                    EventType::Put => EventKind::Put,
                    EventType::Delete => EventKind::Delete,
                },
                kv: from_kv(kv)?,
            })
        })
        .collect()
}
