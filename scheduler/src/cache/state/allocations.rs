//! Allocations: reserved and released in the one index (the placement snapshot), with the
//! tallies that follow them (host ports, queue usage, the shapes counted, what is stopping).

use uni_core::model::Allocation;
use uni_placement::{place_gang, Decision, Mix, Policy, ReplicaRequest, Reserved, Unschedulable};

use super::State;

impl State {
    /// Records an allocation (replacing one with its id) in the index and the tallies.
    pub fn reserve(&mut self, alloc: Allocation) {
        match self.snapshot.allocation(&alloc.id) {
            // Recorded already (the watch confirming a reservation): nothing changes.
            Some(old) if *old == alloc => return,
            Some(old) => {
                let old = old.clone();
                self.tally(&old, false);
            }
            None => {}
        }
        self.snapshot.add_allocation(&alloc);
        self.tally(&alloc, true);
    }

    /// Counts (or stops counting) what `alloc` holds: its port, its shape in the mix, its
    /// queue's usage.
    fn tally(&mut self, alloc: &Allocation, add: bool) {
        self.hold_port(alloc, add);
        if let Some(n) = &alloc.notice {
            let by = (!n.by.is_empty()).then_some(&n.by);
            if add {
                self.stopping.insert(alloc.id.clone(), n.deadline);
                if let Some(by) = by {
                    *self.stopping_for.entry(by.clone()).or_default() += 1;
                }
            } else {
                self.stopping.remove(&alloc.id);
                if let Some(c) = by.and_then(|by| self.stopping_for.get_mut(by)) {
                    *c = c.saturating_sub(1);
                    if *c == 0 {
                        self.stopping_for.remove(&n.by);
                    }
                }
            }
        }
        if let Some(since) = alloc.draining {
            if add {
                self.draining.insert(alloc.id.clone(), since);
            } else {
                self.draining.remove(&alloc.id);
                self.drain_seen.remove(&alloc.id);
            }
        }
        let usage = self.queue_usage.entry(alloc.queue.clone()).or_default();
        if add {
            self.mix.add_allocation(alloc);
            *usage = usage.saturating_add(&alloc.amounts());
        } else {
            self.mix.remove_allocation(alloc);
            *usage = usage.saturating_sub(&alloc.amounts());
        }
    }

    fn hold_port(&mut self, alloc: &Allocation, hold: bool) {
        if alloc.port == 0 {
            return;
        }
        let ports = self.ports.entry(alloc.node.clone()).or_default();
        let count = ports.entry(alloc.port).or_default();
        if hold {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
            if *count == 0 {
                ports.remove(&alloc.port);
            }
        }
        if ports.is_empty() {
            self.ports.remove(&alloc.node);
        }
    }

    /// Whether an allocation on `node` holds `port`.
    pub fn port_taken(&self, node: &str, port: u16) -> bool {
        self.ports.get(node).is_some_and(|p| p.contains_key(&port))
    }

    /// Forgets an allocation; returns it if it was known.
    pub fn release(&mut self, id: &str) -> Option<Allocation> {
        let alloc = self.snapshot.remove_allocation_id(id)?;
        self.tally(&alloc, false);
        Some(alloc)
    }

    /// Places a gang and reserves every member (or none, if one fits nowhere), the tallies
    /// following what each member replaced.
    pub fn reserve_gang(
        &mut self,
        reqs: &[ReplicaRequest],
        policy: &Policy,
        mix: &Mix,
        make_alloc: impl FnMut(usize, &Decision) -> Allocation,
    ) -> Result<Vec<Reserved>, Unschedulable> {
        let members = place_gang(&mut self.snapshot, reqs, policy, mix, make_alloc)?;
        for m in &members {
            if let Some(old) = &m.replaced {
                self.tally(old, false);
            }
            self.tally(&m.allocation, true);
        }
        Ok(members)
    }

    /// Takes back a gang's reservations, restoring what they replaced.
    pub fn unreserve_gang(&mut self, members: &[Reserved]) {
        for m in members.iter().rev() {
            self.release(&m.allocation.id);
            if let Some(old) = &m.replaced {
                self.reserve(old.clone());
            }
        }
    }

    /// Records a reservation the leader is committing, so a rebuild keeps it until the watch
    /// confirms it.
    pub fn reserve_inflight(&mut self, alloc: Allocation) {
        self.reserve(alloc.clone());
        self.inflight.insert(alloc.id.clone(), alloc);
    }

    /// Forgets the reservations not yet confirmed (a new leader rebuilds from the store).
    pub fn clear_inflight(&mut self) {
        self.inflight.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uni_core::catalog::Catalog;

    use super::*;

    fn alloc(id: &str, node: &str, port: u16) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "ns".into(),
            workload: "w".into(),
            node: node.into(),
            port,
            ..Allocation::default()
        }
    }

    #[test]
    fn ports_are_held_while_allocations_are() {
        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        st.reserve(alloc("a", "n1", 30000));
        st.reserve(alloc("b", "n1", 30001));
        st.reserve(alloc("c", "n2", 30000));
        assert!(st.port_taken("n1", 30000) && st.port_taken("n1", 30001));
        assert!(!st.port_taken("n2", 30001));
        // The same allocation recorded again with another port: the old one is free.
        st.reserve(alloc("b", "n1", 30002));
        assert!(!st.port_taken("n1", 30001) && st.port_taken("n1", 30002));
        st.release("a");
        assert!(!st.port_taken("n1", 30000) && st.port_taken("n2", 30000));
        st.release("b");
        st.release("c");
        assert!(st.ports.is_empty());
        assert_eq!(st.allocations().count(), 0);
    }

    #[test]
    fn a_gang_taken_back_leaves_the_tallies_as_they_were() {
        use uni_core::model::WorkloadRef;
        use uni_placement::node_state::NodeState;

        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        st.snapshot
            .upsert_node(NodeState::new("n1", 8_000, 1 << 34));
        let mut running = alloc("g0", "n1", 30000);
        running.queue = "q".into();
        running.compute_milli = 1_000;
        st.reserve(running.clone());
        let before = (
            st.queue_usage("q"),
            st.mix.total(),
            st.port_taken("n1", 30000),
        );

        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 2_000, 0);
        let policy = Policy::default();
        let members = st
            .reserve_gang(&[req.clone(), req], &policy, &Mix::default(), |i, d| {
                Allocation {
                    node: d.node.clone(),
                    queue: "q".into(),
                    compute_milli: 2_000,
                    ..alloc(&format!("g{i}"), "n1", 0)
                }
            })
            .expect("the gang fits");
        // g0 was replaced by the first member: its port is free, the queue holds the gang.
        assert_eq!(members[0].replaced.as_ref(), Some(&running));
        assert!(!st.port_taken("n1", 30000));
        assert_eq!(st.queue_usage("q").compute_milli, 4_000);
        assert_eq!(st.allocations().count(), 2);

        st.unreserve_gang(&members);
        let after = (
            st.queue_usage("q"),
            st.mix.total(),
            st.port_taken("n1", 30000),
        );
        assert_eq!(after, before);
        assert_eq!(st.allocation("g0"), Some(&running));
        assert_eq!(st.allocations().count(), 1);
    }
}
