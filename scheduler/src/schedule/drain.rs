//! Inference replicas scaled away drain before they stop: marked draining, they get no new
//! requests from any gateway, and their allocation (whose removal makes the agent stop the
//! process) goes once no gateway reports a request in flight on them, or after
//! [`Allocation::DRAIN_TIMEOUT_MILLIS`]. A replica wanted again while draining is kept.

use uni_core::model::{Allocation, ReplicaPhase, UnixMillis, WorkloadRef};
use uni_core::store::{codec, Compare, CompareOp, Txn, TxnOp};

use super::commit::allocation_key;
use super::pass::Pass;
use super::publish_tick;
use crate::cache::State;

/// Marks `a` draining (`Some`) or wanted again (`None`); written only while it exists.
pub fn mark(pass: &mut Pass<'_>, st: &mut State, a: &Allocation, since: Option<UnixMillis>) {
    let mut a = a.clone();
    a.draining = since;
    let key = allocation_key(&a);
    let Ok(bytes) = codec::encode(&a) else {
        return;
    };
    st.reserve(a);
    pass.plan.singles.push(
        Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Greater, 0)])
            .and_then([TxnOp::put(key, bytes)]),
    );
}

/// Whether `a` can take requests, so that it must drain rather than stop at once.
pub fn serving(st: &State, a: &Allocation) -> bool {
    st.status(&WorkloadRef::of(a), a.replica)
        .is_some_and(|s| s.allocation_id == a.id && s.phase == ReplicaPhase::Ready)
}

/// Removes the drained allocations; returns when the next one is due without news.
pub fn run(pass: &mut Pass<'_>, st: &mut State) -> Option<UnixMillis> {
    // A gateway publishes within a tick of a change: by then every one has seen the mark.
    let settle = u64::try_from(publish_tick().as_millis() * 2).unwrap_or(2000);
    let timeout = Allocation::DRAIN_TIMEOUT_MILLIS;
    let busy: std::collections::HashSet<&String> = st
        .loads()
        .values()
        .flat_map(|l| l.in_flight.keys())
        .collect();
    let mut done = Vec::new();
    let mut next: Option<UnixMillis> = None;
    for (id, since) in st.draining() {
        // Settled a while after the watch showed the mark to this replica, and so to
        // every gateway's cache.
        let seen = st.drain_seen(id);
        let settled = seen.is_some_and(|seen| pass.now.millis_since(seen) >= settle);
        let timed_out = pass.now.millis_since(*since) >= timeout;
        if timed_out || (settled && !busy.contains(id)) {
            done.push(id.clone());
            continue;
        }
        // Due again at the timeout, or once settled (unseen yet: the watch wakes the loop).
        let at_ms = |base: UnixMillis, after: u64| {
            UnixMillis(
                base.0
                    .saturating_add(i64::try_from(after).unwrap_or(i64::MAX)),
            )
        };
        let mut at = at_ms(*since, timeout);
        if let (Some(seen), false) = (seen, settled) {
            at = UnixMillis(at.0.min(at_ms(seen, settle).0));
        }
        next = Some(next.map_or(at, |n| UnixMillis(n.0.min(at.0))));
    }
    for id in done {
        if let Some(a) = st.release(&id) {
            st.mark_dirty(WorkloadRef::of(&a));
            pass.plan.deletes.push(a);
        }
    }
    next
}
