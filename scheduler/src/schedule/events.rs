//! The events the leader has written, so that a repeat updates one event (its count and last
//! time) instead of writing another. Entries not repeated for [`FORGET_AFTER`] are dropped, so
//! the log does not grow with every object that ever had an event.

use std::collections::HashMap;

use uni_core::model::UnixMillis;

/// How long an event is remembered without a repeat (Kubernetes keeps events an hour too); a
/// later repeat starts a new count.
pub const FORGET_AFTER_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Default)]
pub struct EventLog {
    /// Event key -> (count, first seen, last seen).
    seen: HashMap<String, (u32, UnixMillis, UnixMillis)>,
    /// When entries were last dropped: sweeping is once a minute, not once a pass.
    swept: i64,
}

impl EventLog {
    /// Counts one more occurrence of `key` at `now`; returns the count and the first time.
    pub fn record(&mut self, key: &str, now: UnixMillis) -> (u32, UnixMillis) {
        let entry = self
            .seen
            .entry(key.to_string())
            .and_modify(|(count, _, last)| {
                *count = count.saturating_add(1);
                *last = now;
            })
            .or_insert((1, now, now));
        (entry.0, entry.1)
    }

    /// Drops the events not repeated within [`FORGET_AFTER_MS`] of `now`.
    pub fn forget_before(&mut self, now: UnixMillis) {
        if now.0 - self.swept < 60_000 {
            return;
        }
        self.swept = now.0;
        self.seen
            .retain(|_, (_, _, last)| now.0 - last.0 < FORGET_AFTER_MS);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_up_and_stale_events_are_forgotten() {
        let mut log = EventLog::default();
        let t = |ms| UnixMillis(ms);
        assert_eq!(log.record("a", t(1_000)), (1, t(1_000)));
        assert_eq!(log.record("a", t(2_000)), (2, t(1_000)));
        log.record("b", t(FORGET_AFTER_MS));
        // "a" was last seen FORGET_AFTER_MS - 1,000 before this: about to go, not gone.
        log.forget_before(t(FORGET_AFTER_MS + 1_999));
        assert_eq!(log.len(), 2);
        log.forget_before(t(FORGET_AFTER_MS + 2_000 + 60_000));
        assert_eq!(log.len(), 1, "a is forgotten, b is kept");
        // A later repeat starts a new count.
        assert_eq!(
            log.record("a", t(FORGET_AFTER_MS * 2)),
            (1, t(FORGET_AFTER_MS * 2))
        );
    }
}
