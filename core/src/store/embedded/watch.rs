//! Watches on the embedded store. A watcher first replays the logged history it asked for,
//! then follows live commits; if it falls behind the live channel it catches up from the log,
//! so no revision is skipped and none is delivered twice.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Batch, Inner};
use crate::store::{Revision, WatchEvent, WatchStream};
use crate::{Error, Result};

struct State {
    inner: Weak<Inner>,
    prefix: String,
    /// The next revision to deliver.
    next: Revision,
    live: broadcast::Receiver<Arc<Batch>>,
}

fn compacted(requested: Revision, inner: &Inner) -> Option<Error> {
    let compact_revision = inner.compacted.load(Ordering::Acquire);
    (requested < compact_revision).then_some(Error::Compacted {
        requested,
        compact_revision,
    })
}

pub(super) fn open(inner: &Arc<Inner>, prefix: &str, from: Revision) -> Result<WatchStream> {
    // Subscribe before reading the revision: every later commit reaches `live`.
    let live = inner.live.subscribe();
    let from = if from <= 0 { inner.current() + 1 } else { from };
    if let Some(err) = compacted(from, inner) {
        return Err(err);
    }
    let state = State {
        inner: Arc::downgrade(inner),
        prefix: prefix.to_string(),
        next: from,
        live,
    };
    Ok(Box::pin(futures::stream::unfold(Some(state), step)))
}

type Step = Option<(Result<Vec<WatchEvent>>, Option<State>)>;

async fn step(state: Option<State>) -> Step {
    let mut s = state?;
    loop {
        if let Some(events) = catch_up(&mut s) {
            return Some(match events {
                Ok(events) => (Ok(events), Some(s)),
                Err(e) => (Err(e), None),
            });
        }
        match s.live.recv().await {
            Ok(batch) if batch.revision == s.next => {
                s.next = batch.revision + 1;
                let events: Vec<_> = batch
                    .events
                    .iter()
                    .filter(|e| e.kv.key.starts_with(&s.prefix))
                    .cloned()
                    .collect();
                if !events.is_empty() {
                    return Some((Ok(events), Some(s)));
                }
            }
            // Already delivered from the log, or ahead of us: `catch_up` reads the gap.
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            // The store was closed.
            Err(RecvError::Closed) => return None,
        }
    }
}

/// Revisions read from the log at a time, so a watch from far back is replayed in pieces
/// rather than read into memory at once.
const CATCH_UP_REVISIONS: Revision = 1000;

/// Reads logged revisions from `s.next` towards the current one, if any are pending.
/// Returns `None` when there is nothing to deliver from the log.
fn catch_up(s: &mut State) -> Option<Result<Vec<WatchEvent>>> {
    loop {
        let inner = s.inner.upgrade()?;
        let current = inner.current();
        if s.next > current {
            return None;
        }
        let to = current.min(s.next + CATCH_UP_REVISIONS - 1);
        let history = inner.history(&s.prefix, s.next, to);
        // Compaction may have run while reading: check after, so a gap is never silent.
        if let Some(err) = compacted(s.next, &inner) {
            return Some(Err(err));
        }
        s.next = to + 1;
        match history {
            Ok(events) if events.is_empty() => continue,
            other => return Some(other),
        }
    }
}
