//! The watch RPCs' shared engine: turns a store watch over a key prefix into ADDED, MODIFIED
//! and DELETED events of decoded objects, filtered per request.
//!
//! Semantics (`WatchWorkloadsRequest`): from resource_version 0, every current object is sent as
//! ADDED, then changes after that list; from N > 0, changes after N. The list is read in pages
//! (sized by bytes, [`Pager`]) while the store watch already runs from the revision of the
//! first page, so a change made while later pages are read is either in its page or sent after
//! it, never both: an event no newer than what was listed for its key is dropped.
//! Store deletes carry no value, so the engine remembers the last state of every matching
//! object (and only the revision of the others) to send with DELETED and to filter it. An
//! object that stops matching the filter is sent as DELETED, one that starts matching as ADDED,
//! as Kubernetes does. Compacted history ends the stream with OUT_OF_RANGE.
//!
//! Limits: the number of open watches is capped ([`ApiLimits`]); a client that stops reading
//! for [`ApiLimits::stall`] is ended with RESOURCE_EXHAUSTED after what was buffered, and
//! re-lists, instead of holding the store watch back.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{debug, warn};
use uni_core::store::{EventKind, KeyValue, Pager, Revision, WatchEvent};
use uni_core::Error as CoreError;
use uni_proto::v1::WatchEventType;

use super::object::{decode, Object};
use super::ApiContext;
use crate::error::{Error, Result};

/// Events buffered per watcher before the watch waits for a slow client.
const BUFFER: usize = 128;
/// Keys per page of the initial list (fewer when values are large).
const LIST_PAGE: usize = 500;
/// How long a watch waits for a client that reads nothing before ending it.
const STALL: Duration = Duration::from_secs(30);

/// Caps on watches, shared by every service of a replica.
#[derive(Debug)]
pub struct ApiLimits {
    watches: Arc<Semaphore>,
    max_watches: usize,
    /// How long a watch waits for a client that reads nothing before ending it.
    stall: Duration,
}

impl ApiLimits {
    pub fn new(max_watches: usize) -> Self {
        Self {
            watches: Arc::new(Semaphore::new(max_watches)),
            max_watches,
            stall: STALL,
        }
    }

    /// A slot for one more watch, held for its life.
    pub(crate) fn watch_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.watches.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "this replica serves at most {} watches and all are open; retry later or \
                 connect to another replica",
                self.max_watches
            ))
        })
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self::new(10_000)
    }
}

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

/// The responses of one watch.
pub(crate) type Responses<R> = Pin<Box<dyn Stream<Item = Result<R, Status>> + Send>>;

/// Starts a watch; request problems (bad revision, compacted history, no free slot) fail the
/// call itself, later ones end the stream with an error status.
pub(crate) async fn start<T: Object, R: Send + 'static>(
    ctx: &ApiContext,
    req: WatchRequest<T>,
    respond: Respond<T, R>,
    shutdown: CancellationToken,
) -> Result<Responses<R>, Status> {
    if req.resource_version < 0 {
        return Err(Error::from(CoreError::invalid(
            "resource_version",
            "must not be negative",
        ))
        .into());
    }
    let (store, limits) = (ctx.store.clone(), &ctx.limits);
    let slot = limits.watch_slot()?;
    let mut pager = Pager::new(req.prefix.clone(), LIST_PAGE);
    let first = pager
        .next(&*store)
        .await
        .map_err(Error::from)?
        .unwrap_or_default();
    let from = if req.resource_version == 0 {
        first.revision + 1
    } else {
        req.resource_version + 1
    };
    let stream = store.watch(&req.prefix, from).await.map_err(Error::from)?;
    let listed = (req.resource_version == 0).then_some(first.revision);
    let mut engine = Engine {
        known: HashMap::new(),
        listing: listed.is_some(),
        req,
    };

    let (tx, rx) = mpsc::channel(BUFFER);
    let (fell_behind, ended) = oneshot::channel::<Status>();
    let out = Out {
        tx,
        shutdown: shutdown.clone(),
        stall: limits.stall,
        fell_behind: Some(fell_behind),
    };
    // The task ends when the client goes away, the store watch fails, the client falls
    // behind or the server shuts down; the server's graceful shutdown waits for the stream it
    // feeds, and so for the task.
    tokio::spawn(async move {
        let _slot = slot;
        let mut out = out;
        let mut page = Some(first);
        while let Some(p) = page.take() {
            for kv in &p.kvs {
                if let Some(obj) = engine.seed(kv) {
                    if !out
                        .send(Ok(respond(
                            WatchEventType::Added,
                            Some(obj),
                            kv.mod_revision,
                        )))
                        .await
                    {
                        return;
                    }
                }
            }
            page = match pager.next(&*store).await {
                Ok(next) => next,
                Err(e) => {
                    out.send(Err(Error::from(e).into())).await;
                    return;
                }
            };
        }
        if let (Some(rev), true) = (listed, engine.req.allow_bookmarks) {
            if !out
                .send(Ok(respond(WatchEventType::Bookmark, None, rev)))
                .await
            {
                return;
            }
        }
        let mut stream = stream;
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = out.tx.try_send(Err(Error::ShuttingDown.into()));
                    return;
                }
                _ = out.tx.closed() => {
                    debug!(prefix = %engine.req.prefix, "watch: client went away");
                    return;
                }
                batch = stream.next() => batch,
            };
            let events = match batch {
                Some(Ok(events)) => events,
                Some(Err(e)) => {
                    out.send(Err(Error::from(e).into())).await;
                    return;
                }
                None => {
                    let ended = CoreError::Unavailable("store watch ended".into());
                    out.send(Err(Error::from(ended).into())).await;
                    return;
                }
            };
            for event in &events {
                if let Some((ty, obj, rev)) = engine.apply(event) {
                    if !out.send(Ok(respond(ty, Some(obj), rev))).await {
                        return;
                    }
                }
            }
        }
    });
    // After the buffered responses, the reason the watch was ended, if it fell behind.
    let reason = futures::stream::once(ended).filter_map(|r| async move { r.ok().map(Err) });
    Ok(Box::pin(ReceiverStream::new(rx).chain(reason)))
}

/// The sending side of one watch.
struct Out<R> {
    tx: mpsc::Sender<Result<R, Status>>,
    shutdown: CancellationToken,
    stall: Duration,
    fell_behind: Option<oneshot::Sender<Status>>,
}

impl<R> Out<R> {
    /// Sends one item; false once the client has gone, when the server shuts down while a slow
    /// client keeps the buffer full, or when the client read nothing for `stall` (it is then
    /// told, after what it was sent, to list again).
    async fn send(&mut self, item: Result<R, Status>) -> bool {
        tokio::select! {
            sent = tokio::time::timeout(self.stall, self.tx.send(item)) => match sent {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    warn!(stall = ?self.stall, "watch: client stopped reading; ending its watch");
                    if let Some(tell) = self.fell_behind.take() {
                        let _ = tell.send(Status::resource_exhausted(format!(
                            "watch fell behind: the client read nothing for {}s with {BUFFER} \
                             events waiting; list again and watch from the listed \
                             resource_version",
                            self.stall.as_secs()
                        )));
                    }
                    false
                }
            },
            _ = self.shutdown.cancelled() => false,
        }
    }
}

/// What the engine remembers of a key: its last revision, and its object when it matched.
struct Seen<T> {
    revision: Revision,
    matching: Option<T>,
}

/// The per-watch memory of what each key last held, and the event each change becomes.
struct Engine<T> {
    known: HashMap<String, Seen<T>>,
    /// The client got a list (resource_version 0): events no newer than a listed key's
    /// revision are already reflected, and keys never listed are unknown to the client.
    listing: bool,
    req: WatchRequest<T>,
}

impl<T: Object> Engine<T> {
    fn decode(&self, kv: &KeyValue) -> Option<T> {
        decode(kv)
            .map_err(|e| warn!(key = %kv.key, error = %e, "watch: skipping bad value"))
            .ok()
    }

    /// Remembers a listed key; returns its object when the client gets it as ADDED.
    fn seed(&mut self, kv: &KeyValue) -> Option<T> {
        let obj = self.decode(kv)?;
        let matching = (self.req.matches)(&obj).then_some(obj);
        self.known.insert(
            kv.key.clone(),
            Seen {
                revision: kv.mod_revision,
                matching: matching.clone(),
            },
        );
        matching.filter(|_| self.listing)
    }

    /// The event to send for one store change, if any.
    fn apply(&mut self, event: &WatchEvent) -> Option<(WatchEventType, T, Revision)> {
        let kv = &event.kv;
        let rev = kv.mod_revision;
        let seen = self.known.get(&kv.key);
        if self.listing && seen.is_some_and(|s| rev <= s.revision) {
            // Listed after this change happened.
            return None;
        }
        match event.kind {
            EventKind::Put => {
                let obj = self.decode(kv)?;
                let now = (self.req.matches)(&obj);
                let before = seen.map(|s| s.matching.is_some());
                self.known.insert(
                    kv.key.clone(),
                    Seen {
                        revision: rev,
                        matching: now.then(|| obj.clone()),
                    },
                );
                let ty = match (now, before) {
                    (true, _) if kv.create_revision == kv.mod_revision => WatchEventType::Added,
                    (true, Some(false)) => WatchEventType::Added,
                    // Created while the list was read, after its page: new to the client.
                    (true, None) if self.listing => WatchEventType::Added,
                    (true, _) => WatchEventType::Modified,
                    // It left the client's selection: for the client it is gone.
                    (false, Some(true)) => WatchEventType::Deleted,
                    (false, _) => return None,
                };
                Some((ty, obj, rev))
            }
            EventKind::Delete => {
                let last = match self.known.remove(&kv.key) {
                    Some(seen) => seen.matching?,
                    // The client never had it.
                    None if self.listing || self.req.narrowed => return None,
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
            listing: false,
            req: WatchRequest {
                prefix: QueueKey::prefix(),
                resource_version: 0,
                allow_bookmarks: false,
                matches: Box::new(|q: &Queue| q.meta.labels.get("team").is_some_and(|t| t == "a")),
                narrowed,
            },
        }
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_told_to_list_again() {
        let (tx, mut rx) = mpsc::channel(1);
        let (fell_behind, mut reason) = oneshot::channel();
        let mut out = Out {
            tx,
            shutdown: CancellationToken::new(),
            stall: Duration::from_millis(20),
            fell_behind: Some(fell_behind),
        };
        assert!(out.send(Ok(1)).await, "fits the buffer");
        assert!(!out.send(Ok(2)).await, "nobody reads: the watch ends");
        let status = reason.try_recv().expect("a reason was given");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("list again"), "{status:?}");
        assert_eq!(
            rx.recv().await.map(|r| r.ok()),
            Some(Some(1)),
            "buffered items still arrive"
        );
    }

    #[test]
    fn watch_slots_run_out() {
        let limits = ApiLimits::new(1);
        let held = limits.watch_slot().expect("first");
        let refused = limits.watch_slot().expect_err("second");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        drop(held);
        let _again = limits.watch_slot().expect("freed");
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

    #[test]
    fn changes_already_listed_are_not_sent_twice() {
        use WatchEventType::*;
        let mut e = engine(false);
        e.listing = true;
        // Page 2 was read at revision 9 and held q at revision 7; the watch runs from 5.
        assert!(e.seed(&put("q", "a", 3, 7).kv).is_some());
        assert!(
            e.seed(&put("x", "b", 4, 4).kv).is_none(),
            "x does not match"
        );
        assert_eq!(
            ty(e.apply(&put("q", "a", 3, 6))),
            None,
            "older than the list"
        );
        assert_eq!(ty(e.apply(&put("q", "a", 3, 7))), None, "what was listed");
        assert_eq!(ty(e.apply(&put("q", "a", 3, 8))), Some((Modified, 8)));
        // Created and deleted while the list was read, never listed: the client never had it.
        assert_eq!(ty(e.apply(&put("n", "a", 6, 6))), Some((Added, 6)));
        assert_eq!(ty(e.apply(&delete("gone", 6))), None);
        assert_eq!(ty(e.apply(&put("x", "a", 4, 10))), Some((Added, 10)));
    }
}
