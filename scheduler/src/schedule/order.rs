//! The order a pass takes workloads in. Workloads that preempted others and wait for them to
//! stop come first (the room is theirs). Then, queue by queue (with [`QueueOrder::FairShare`]):
//! the queue first that is below its guarantee, then of higher queue priority, then holding
//! the smaller weighted dominant share beyond its guarantee; within a queue, higher priority
//! first, then the earlier submitted.

use std::collections::{BTreeMap, VecDeque};

use uni_core::model::{ResourceAmounts, WorkloadRef};

use super::admission::tree;
use super::plan::QueueOrder;
use crate::cache::State;

pub struct Order {
    first: VecDeque<WorkloadRef>,
    queues: BTreeMap<String, VecDeque<WorkloadRef>>,
}

impl Order {
    pub fn new(st: &State, dirty: impl IntoIterator<Item = WorkloadRef>) -> Self {
        let mut first = Vec::new();
        let mut queues: BTreeMap<String, Vec<WorkloadRef>> = BTreeMap::new();
        for r in dirty {
            let queue = st
                .workload(&r)
                .map_or_else(String::new, |w| w.value.spec.queue().to_string());
            if st.is_nominated(&r.to_string()) {
                first.push(r);
            } else {
                queues.entry(queue).or_default().push(r);
            }
        }
        first.sort_by_cached_key(|r| key(st, r));
        let queues = queues
            .into_iter()
            .map(|(q, mut rs)| {
                rs.sort_by_cached_key(|r| key(st, r));
                (q, rs.into())
            })
            .collect();
        Self {
            first: first.into(),
            queues,
        }
    }

    /// The next workload to look at, judged on what the cache holds now.
    pub fn next(
        &mut self,
        st: &State,
        capacity: ResourceAmounts,
        mode: QueueOrder,
    ) -> Option<WorkloadRef> {
        if let Some(r) = self.first.pop_front() {
            return Some(r);
        }
        self.queues.retain(|_, rs| !rs.is_empty());
        let queue = if self.queues.len() <= 1 {
            self.queues.keys().next()?.clone()
        } else {
            let t = tree(st, capacity);
            let head = |q: &str| self.queues[q].front().map_or((i32::MIN, 0), |r| key(st, r));
            // Ties go to the first queue by name.
            self.queues
                .keys()
                .min_by_key(|q| match mode {
                    QueueOrder::FairShare => {
                        let o = t.order(q);
                        (o.tier, o.priority, o.share, (0, 0))
                    }
                    QueueOrder::Priority => (t.order(q).tier, 0, 0, head(q)),
                    QueueOrder::Submission => (0, 0, 0, (0, head(q).1)),
                })?
                .clone()
        };
        self.queues.get_mut(&queue)?.pop_front()
    }

    /// What was not taken, for the next pass.
    pub fn rest(self) -> impl Iterator<Item = WorkloadRef> {
        self.first
            .into_iter()
            .chain(self.queues.into_values().flatten())
    }
}

/// Within a queue: higher priority first, then the earlier submitted.
fn key(st: &State, r: &WorkloadRef) -> (i32, i64) {
    st.workload(r).map_or((i32::MIN, 0), |w| {
        (-w.value.spec.priority(), w.value.meta.created.0)
    })
}
