//! Whether a workload's queue may take what it asks now: the queue tree (guarantees,
//! borrowing and lending, maximums) over what the cache holds.

use uni_core::model::{ResourceAmounts, Workload};
use uni_placement::tenancy::{Limit, QueueTree};

use super::pass::Pass;
use crate::cache::State;

/// The queue tree as the cache holds it now.
pub fn tree(st: &State, capacity: ResourceAmounts) -> QueueTree {
    QueueTree::new(
        st.queues().values().map(|q| &q.value),
        st.queue_usages(),
        capacity,
    )
}

/// Why `w`'s queue cannot take `extra` more (with `counted` of it already recorded in the
/// cache, as a reserved gang is), if it cannot; and whether preempting could help (not for
/// a queue with children).
pub fn refusal(
    pass: &Pass<'_>,
    st: &State,
    w: &Workload,
    extra: &ResourceAmounts,
    counted: bool,
) -> Option<(String, bool)> {
    let queue = w.spec.queue();
    let t = tree(st, pass.capacity);
    let freed = [(queue, *extra)];
    let freed: &[(&str, ResourceAmounts)] = if counted { &freed } else { &[] };
    t.admit(queue, *extra, freed)
        .err()
        .map(|r| (r.to_string(), r.limit != Limit::NotALeaf))
}
