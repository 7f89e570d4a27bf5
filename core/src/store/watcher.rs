//! A resumable list-and-watch of one prefix, in the spirit of kube-runtime's `watcher`: it
//! lists the prefix in pages, follows one watch from the revision after the list, lists again
//! when that history is compacted away or the watch fails, and backs off between failures.
//! Every component that mirrors part of the key space (the scheduler's cache, an agent's
//! allocations, the simulated fleet, an agent's own node key) follows it the same way.

use std::sync::Arc;

use futures::StreamExt;
use tokio::time::Instant;

use super::{EventKind, KeyValue, KvStore, Pager, Revision, WatchStream};
use crate::backoff::Backoff;
use crate::{Error, Result};

const DEFAULT_PAGE: usize = 1000;

/// What changed under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Everything under the prefix, listed at `revision` or later: it replaces whatever the
    /// consumer held. Pages read after `revision` may hold newer values; the watch replays
    /// those changes, so consumers must accept a change they already hold.
    Restarted {
        kvs: Vec<KeyValue>,
        revision: Revision,
    },
    /// A key was created or written.
    Applied(KeyValue),
    /// A key was deleted (its value is empty; `mod_revision` is the deletion's).
    Deleted(KeyValue),
}

/// Progress of a list, kept across cancelled calls.
#[derive(Default)]
struct Listing {
    /// The store revision the list started at.
    start: Option<Revision>,
    /// Where the list has got to; `None` before the first page.
    pager: Option<Pager>,
    kvs: Vec<KeyValue>,
}

pub struct Watcher {
    store: Arc<dyn KvStore>,
    prefix: String,
    page: usize,
    backoff: Backoff,
    /// After a failure, nothing is tried before this instant.
    retry_at: Option<Instant>,
    listing: Listing,
    /// Set once the list is done: the watch from the revision after it.
    stream: Option<WatchStream>,
}

impl Watcher {
    /// Follows `prefix`, listing pages of up to 1,000 keys (fewer when values are large, see
    /// [`Pager`]) and backing off 100 ms doubling to 5 s.
    pub fn new(store: Arc<dyn KvStore>, prefix: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
            page: DEFAULT_PAGE,
            backoff: Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(5),
            ),
            retry_at: None,
            listing: Listing::default(),
            stream: None,
        }
    }

    pub fn page_size(mut self, keys: usize) -> Self {
        self.page = keys.max(1);
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Drops the watch: the next call lists again and returns [`Event::Restarted`].
    pub fn restart(&mut self) {
        self.listing = Listing::default();
        self.stream = None;
        self.retry_at = None;
        self.backoff.reset();
    }

    /// The next changes, in store order: one [`Event::Restarted`] after every (re-)list, else
    /// the events of one watch response. An error is returned once and the watcher lists again
    /// on the next call, after the backoff ([`Error::Compacted`] lists again at once).
    ///
    /// Cancel-safe: a call dropped at an await point loses no progress, so it can sit in a
    /// `select!` beside other work.
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
            self.retry_at = None;
        }
        let result = match &mut self.stream {
            None => self.list().await,
            Some(stream) => match stream.next().await {
                Some(Ok(batch)) => Ok(batch
                    .into_iter()
                    .map(|e| match e.kind {
                        EventKind::Put => Event::Applied(e.kv),
                        EventKind::Delete => Event::Deleted(e.kv),
                    })
                    .collect()),
                Some(Err(e)) => Err(e),
                None => Err(Error::Unavailable(format!(
                    "watch of {} ended",
                    self.prefix
                ))),
            },
        };
        if let Err(e) = &result {
            self.listing = Listing::default();
            self.stream = None;
            if !matches!(e, Error::Compacted { .. }) {
                self.retry_at = Some(Instant::now() + self.backoff.fail());
            }
        }
        result
    }

    /// Reads the next page; once the last is read, opens the watch and returns the list.
    async fn list(&mut self) -> Result<Vec<Event>> {
        let start = match self.listing.start {
            Some(s) => s,
            None => *self.listing.start.insert(self.store.revision().await?),
        };
        let (prefix, page) = (&self.prefix, self.page);
        let pager = self
            .listing
            .pager
            .get_or_insert_with(|| Pager::new(prefix.clone(), page));
        while let Some(page) = pager.next(&*self.store).await? {
            self.listing.kvs.extend(page.kvs);
        }
        self.stream = Some(self.store.watch(&self.prefix, start + 1).await?);
        let kvs = std::mem::take(&mut self.listing).kvs;
        self.backoff.reset();
        Ok(vec![Event::Restarted {
            kvs,
            revision: start,
        }])
    }
}
