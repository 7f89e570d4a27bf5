//! The watch RPCs' shared engine: turns a store watch over a key prefix into ADDED, MODIFIED
//! and DELETED events of decoded objects, filtered per request.
//!
//! Semantics (`WatchWorkloadsRequest`): from resource_version 0, every current object is sent as
//! ADDED (one consistent read), then changes after that read; from N > 0, changes after N.
//! Store deletes carry no value, so the engine remembers the last state of every object under
//! the prefix (seeded by one read) to send with DELETED and to filter it. An object that stops
//! matching the filter is sent as DELETED, one that starts matching as ADDED, as Kubernetes
//! does. Compacted history ends the stream with OUT_OF_RANGE.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{debug, warn};
use uni_core::store::{EventKind, KeyValue, KvStore, RangeOptions, Revision, WatchEvent};
use uni_core::Error as CoreError;
use uni_proto::v1::WatchEventType;

use super::object::{decode, Object};
use crate::error::{Error, Result};

/// Events buffered per watcher before the store watch waits for a slow client.
const BUFFER: usize = 128;

/// What one watch request asks for.
pub(crate) struct WatchRequest<T> {
    pub prefix: String,
    /// The request's resource_version: 0 lists first, N > 0 sends changes after N.
    pub resource_version: Revision,
    pub allow_bookmarks: bool,
    /// Whether the client wants this object.
    pub matches: Box<dyn Fn(&T) -> bool + Send + Sync>,
    /// True when `matches` looks at more than the key (labels, kind, ...): a deletion whose
    /// object was never seen is then not reported, since it cannot be judged.
    pub narrowed: bool,
}

/// Builds a response message from an event type, its object (None for BOOKMARK) and revision.
pub(crate) type Respond<T, R> = Arc<dyn Fn(WatchEventType, Option<T>, Revision) -> R + Send + Sync>;

/// Starts a watch; request problems (bad revision, compacted history) fail the call itself,
/// later ones end the stream with an error status.
pub(crate) async fn start<T: Object, R: Send + 'static>(
    store: Arc<dyn KvStore>,
    req: WatchRequest<T>,
    respond: Respond<T, R>,
    shutdown: CancellationToken,
) -> Result<ReceiverStream<Result<R, Status>>> {
    if req.resource_version < 0 {
        return Err(CoreError::invalid("resource_version", "must not be negative").into());
    }
    // One unpaged read is one consistent snapshot: the initial list, and the last known state
    // of every object for later deletes.
    let snapshot = store.range(&req.prefix, RangeOptions::default()).await?;
    let from = if req.resource_version == 0 {
        snapshot.revision + 1
    } else {
        req.resource_version + 1
    };
    let stream = store.watch(&req.prefix, from).await?;

    let mut engine = Engine {
        known: HashMap::new(),
        req,
    };
    let mut initial = Vec::new();
    for kv in &snapshot.kvs {
        let Some(obj) = engine.decode(kv) else {
            continue;
        };
        if engine.req.resource_version == 0 && (engine.req.matches)(&obj) {
            initial.push((WatchEventType::Added, obj.clone(), kv.mod_revision));
        }
        engine.known.insert(kv.key.clone(), obj);
    }
    let bookmark = (engine.req.resource_version == 0 && engine.req.allow_bookmarks)
        .then_some(snapshot.revision);

    let (tx, rx) = mpsc::channel(BUFFER);
    // The task ends when the client goes away, the store watch fails or the server shuts down;
    // the server's graceful shutdown waits for the stream it feeds, and so for the task.
    tokio::spawn(async move {
        let emit = |item| send(&tx, item, &shutdown);
        for (ty, obj, rev) in initial {
            if !emit(Ok(respond(ty, Some(obj), rev))).await {
                return;
            }
        }
        if let Some(rev) = bookmark {
            if !emit(Ok(respond(WatchEventType::Bookmark, None, rev))).await {
                return;
            }
        }
        let mut stream = stream;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tx.try_send(Err(Error::ShuttingDown.into()));
                    return;
                }
                _ = tx.closed() => {
                    debug!(prefix = %engine.req.prefix, "watch: client went away");
                    return;
                }
                batch = stream.next() => batch,
            };
            let events = match batch {
                Some(Ok(events)) => events,
                Some(Err(e)) => {
                    let _ = emit(Err(Error::from(e).into())).await;
                    return;
                }
                None => {
                    let ended = CoreError::Unavailable("store watch ended".into());
                    let _ = emit(Err(Error::from(ended).into())).await;
                    return;
                }
            };
            for event in &events {
                if let Some((ty, obj, rev)) = engine.apply(event) {
                    if !emit(Ok(respond(ty, Some(obj), rev))).await {
                        return;
                    }
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Sends one item; false once the client has gone, or when the server shuts down while a
/// slow client keeps the buffer full.
async fn send<R>(
    tx: &mpsc::Sender<Result<R, Status>>,
    item: Result<R, Status>,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        sent = tx.send(item) => sent.is_ok(),
        _ = shutdown.cancelled() => false,
    }
}

/// The per-watch memory of what each key last held, and the event each change becomes.
struct Engine<T> {
    known: HashMap<String, T>,
    req: WatchRequest<T>,
}

impl<T: Object> Engine<T> {
    fn decode(&self, kv: &KeyValue) -> Option<T> {
        decode(kv)
            .map_err(|e| warn!(key = %kv.key, error = %e, "watch: skipping bad value"))
            .ok()
    }

    /// The event to send for one store change, if any.
    fn apply(&mut self, event: &WatchEvent) -> Option<(WatchEventType, T, Revision)> {
        let kv = &event.kv;
        let rev = kv.mod_revision;
        match event.kind {
            EventKind::Put => {
                let obj = self.decode(kv)?;
                let now = (self.req.matches)(&obj);
                let before = self.known.get(&kv.key).map(|o| (self.req.matches)(o));
                self.known.insert(kv.key.clone(), obj.clone());
                let ty = match (now, before) {
                    (true, _) if kv.create_revision == kv.mod_revision => WatchEventType::Added,
                    (true, Some(false)) => WatchEventType::Added,
                    (true, _) => WatchEventType::Modified,
                    // It left the client's selection: for the client it is gone.
                    (false, Some(true)) => WatchEventType::Deleted,
                    (false, _) => return None,
                };
                Some((ty, obj, rev))
            }
            EventKind::Delete => {
                let last = match self.known.remove(&kv.key) {
                    Some(obj) => (self.req.matches)(&obj).then_some(obj)?,
                    None if self.req.narrowed => return None,
                    None => T::from_key(&kv.key)?,
                };
                let mut last = last;
                last.meta_mut().resource_version = rev;
                Some((WatchEventType::Deleted, last, rev))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::Queue;
    use uni_core::store::keys::{QueueKey, TypedKey};

    fn put(name: &str, label: &str, create: Revision, rev: Revision) -> WatchEvent {
        let mut q = Queue::default();
        q.meta.name = name.into();
        q.meta.labels.insert("team".into(), label.into());
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: QueueKey::new(name).map(|k| k.format()).unwrap_or_default(),
                value: serde_json::to_vec(&q).unwrap_or_default(),
                create_revision: create,
                mod_revision: rev,
                version: 1,
                lease: 0,
            },
        }
    }

    fn delete(name: &str, rev: Revision) -> WatchEvent {
        let mut e = put(name, "", 0, rev);
        e.kind = EventKind::Delete;
        e.kv.value.clear();
        e
    }

    fn engine(narrowed: bool) -> Engine<Queue> {
        Engine {
            known: HashMap::new(),
            req: WatchRequest {
                prefix: QueueKey::prefix(),
                resource_version: 0,
                allow_bookmarks: false,
                matches: Box::new(|q: &Queue| q.meta.labels.get("team").is_some_and(|t| t == "a")),
                narrowed,
            },
        }
    }

    fn ty(e: Option<(WatchEventType, Queue, Revision)>) -> Option<(WatchEventType, Revision)> {
        e.map(|(t, _, r)| (t, r))
    }

    #[test]
    fn selection_changes_become_added_and_deleted() {
        let mut e = engine(true);
        use WatchEventType::*;
        assert_eq!(ty(e.apply(&put("q", "a", 2, 2))), Some((Added, 2)));
        assert_eq!(ty(e.apply(&put("q", "a", 2, 3))), Some((Modified, 3)));
        assert_eq!(ty(e.apply(&put("q", "b", 2, 4))), Some((Deleted, 4)));
        assert_eq!(ty(e.apply(&put("q", "b", 2, 5))), None);
        assert_eq!(ty(e.apply(&put("q", "a", 2, 6))), Some((Added, 6)));
        let (t, last, rev) = e.apply(&delete("q", 7)).expect("deleted");
        assert_eq!((t, rev, last.meta.resource_version), (Deleted, 7, 7));
        assert_eq!(last.meta.labels.get("team").map(String::as_str), Some("a"));
        // A deletion of an object never seen cannot be judged against labels.
        assert_eq!(ty(e.apply(&delete("other", 8))), None);
        let mut wide = engine(false);
        let (t, last, _) = wide.apply(&delete("other", 8)).expect("deleted");
        assert_eq!((t, last.meta.name.as_str()), (Deleted, "other"));
    }
}
