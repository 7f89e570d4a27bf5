//! Workloads that did not fit wait here with exponential backoff, and return to the queue
//! early when capacity appears (a node joins or something is freed).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uni_core::model::WorkloadRef;
use uni_core::Backoff;

pub struct Backoffs {
    backoff: Backoff,
    waiting: HashMap<WorkloadRef, (u32, Instant)>,
}

impl Backoffs {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            backoff: Backoff::new(initial, max),
            waiting: HashMap::new(),
        }
    }

    /// Parks `r` after a failed attempt; each consecutive failure doubles the wait.
    pub fn fail(&mut self, r: &WorkloadRef, now: Instant) {
        let attempts = self.waiting.get(r).map_or(0, |(a, _)| *a) + 1;
        let wait = self.backoff.delay_after(attempts);
        self.waiting.insert(r.clone(), (attempts, now + wait));
    }

    /// Forgets `r` after it was placed.
    pub fn succeed(&mut self, r: &WorkloadRef) {
        self.waiting.remove(r);
    }

    pub fn is_waiting(&self, r: &WorkloadRef) -> bool {
        self.waiting.contains_key(r)
    }

    /// Moves every workload whose wait is over into `queue`.
    pub fn release_due(&mut self, now: Instant, queue: &mut BTreeSet<WorkloadRef>) {
        for (r, (_, due)) in &self.waiting {
            if *due <= now {
                queue.insert(r.clone());
            }
        }
    }

    /// Moves every waiting workload into `queue`, keeping its attempt count.
    pub fn release_all(&mut self, queue: &mut BTreeSet<WorkloadRef>) {
        queue.extend(self.waiting.keys().cloned());
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.values().map(|(_, due)| *due).min()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: &str) -> WorkloadRef {
        WorkloadRef {
            namespace: "ns".into(),
            name: n.into(),
        }
    }

    #[test]
    fn waits_double_and_release_when_due() {
        let mut b = Backoffs::new(Duration::from_secs(1), Duration::from_secs(4));
        let t0 = Instant::now();
        b.fail(&r("a"), t0);
        assert_eq!(b.next_due(), Some(t0 + Duration::from_secs(1)));
        b.fail(&r("a"), t0);
        b.fail(&r("a"), t0);
        b.fail(&r("a"), t0);
        // Capped at the maximum.
        assert_eq!(b.next_due(), Some(t0 + Duration::from_secs(4)));
        let mut q = BTreeSet::new();
        b.release_due(t0 + Duration::from_secs(3), &mut q);
        assert!(q.is_empty());
        b.release_due(t0 + Duration::from_secs(4), &mut q);
        assert!(q.contains(&r("a")));
        b.succeed(&r("a"));
        assert!(b.is_empty());
    }
}
