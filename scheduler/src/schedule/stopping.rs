//! Allocations told to stop: removed once their agent reports them stopped (or, if it never
//! does, a while after their deadline), which frees their capacity for the workload they
//! make room for. A training job whose whole gang is gone is `Preempted` (resizes excepted)
//! and placed again in its old place in the order: its submission time does not change, and
//! a preemption or resize is not a restart.

use std::collections::BTreeMap;

use uni_core::model::{
    EventType, StopNotice, UnixMillis, WorkloadPhase, WorkloadRef, WorkloadSpec,
};

use super::pass::Pass;
use super::preempt::Reason;
use super::status::object_ref;
use crate::cache::State;

/// After its deadline the agent has killed the replica (or its node has lost its lease and
/// the replica is fenced): past this much more, the allocation goes without the report.
const REPORT_SLACK_MILLIS: i64 = 15_000;

/// Removes the stopped allocations; returns when the next deadline is due.
pub fn run(pass: &mut Pass<'_>, st: &mut State) -> Option<UnixMillis> {
    let mut done: BTreeMap<WorkloadRef, StopNotice> = BTreeMap::new();
    let mut next: Option<UnixMillis> = None;
    let stopping: Vec<(String, UnixMillis)> = st
        .stopping()
        .iter()
        .map(|(id, d)| (id.clone(), *d))
        .collect();
    for (id, deadline) in stopping {
        let Some(a) = st.allocation(&id).cloned() else {
            continue;
        };
        let r = WorkloadRef::of(&a);
        let stopped = st
            .status(&r, a.replica)
            .is_some_and(|s| s.allocation_id == a.id && s.phase.is_terminal());
        let due = UnixMillis(deadline.0 + REPORT_SLACK_MILLIS);
        if !stopped && pass.now < due {
            next = Some(next.map_or(due, |n: UnixMillis| UnixMillis(n.0.min(due.0))));
            continue;
        }
        if let Some(released) = st.release(&id) {
            pass.plan.deletes.push(released);
        }
        if let Some(n) = a.notice {
            if let Ok(by) = n.by.parse::<WorkloadRef>() {
                st.mark_dirty(by);
            }
            done.insert(r, n);
        }
    }
    for (r, notice) in done {
        st.mark_dirty(r.clone());
        if !st.allocations_of(&r).is_empty() {
            continue;
        }
        let Some(w) = st.workload(&r).map(|s| s.value.clone()) else {
            continue;
        };
        let resized = notice.reason == Reason::Resized.as_str();
        if matches!(w.spec, WorkloadSpec::Training(_)) && !resized {
            pass.update_status(st, &r, |w, _| {
                w.status.phase = WorkloadPhase::Preempted;
                w.status.reason = "Preempted".into();
                w.status.message = notice.message.clone();
            });
        }
        let message = if resized {
            format!("stopped to resize; placing it again: {}", notice.message)
        } else {
            format!("stopped; waiting to be placed again: {}", notice.message)
        };
        pass.event(object_ref(&w), EventType::Normal, "Stopped", message);
    }
    next
}
