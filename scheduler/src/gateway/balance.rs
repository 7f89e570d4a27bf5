//! Least outstanding requests: each request goes to the replica with the fewest in flight
//! through this gateway, ties taken in turn. The counts are also the concurrency signal a
//! service scales on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::route::Backend;

/// Picks past which idle counters are dropped.
const PRUNE_EVERY: usize = 4096;

#[derive(Default)]
pub struct Balancer {
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    turn: AtomicUsize,
}

/// One request in flight on a replica; dropping it (when the response body ends) counts it
/// out.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// `backends` from the least loaded to the most (ties rotated), to try in that order.
    pub fn order(&self, mut backends: Vec<Backend>) -> Vec<Backend> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let n = backends.len().max(1);
        backends.rotate_left(turn % n);
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if turn % PRUNE_EVERY == PRUNE_EVERY - 1 {
            map.retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Relaxed) > 0);
        }
        // A stable sort keeps the rotation among equals.
        backends.sort_by_key(|b| {
            map.get(&b.allocation)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        });
        backends
    }

    /// Counts a request in on `b`.
    pub fn start(&self, b: &Backend) -> InFlight {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(b.allocation.clone()).or_default().clone();
        c.fetch_add(1, Ordering::Relaxed);
        InFlight(c)
    }

    /// Replicas with requests in flight, and how many.
    pub fn busy(&self) -> std::collections::BTreeMap<String, u32> {
        let map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(id, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (id.clone(), u32::try_from(n).unwrap_or(u32::MAX)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: &str) -> Backend {
        Backend {
            allocation: id.into(),
            addr: "127.0.0.1:1".parse().expect("addr"),
        }
    }

    #[test]
    fn the_least_loaded_replica_comes_first_and_ties_take_turns() {
        let bal = Balancer::default();
        let all = vec![b("a"), b("b"), b("c")];
        let held: Vec<InFlight> = vec![bal.start(&b("a")), bal.start(&b("a")), bal.start(&b("b"))];
        for _ in 0..3 {
            let order = bal.order(all.clone());
            let ids: Vec<&str> = order.iter().map(|x| x.allocation.as_str()).collect();
            assert_eq!(ids, vec!["c", "b", "a"]);
        }
        drop(held);
        assert!(bal.busy().is_empty(), "counted out when dropped");
        let firsts: std::collections::BTreeSet<String> = (0..3)
            .map(|_| bal.order(all.clone())[0].allocation.clone())
            .collect();
        assert_eq!(firsts.len(), 3, "idle replicas take turns: {firsts:?}");
    }
}
