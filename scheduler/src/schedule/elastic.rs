//! Growing elastic training jobs: a running job below `workers.max` grows when room for more
//! workers has stayed free (with nothing else waiting) for the stabilization window. Growing
//! restarts the gang at its new size, with notice like a preemption, so it can checkpoint;
//! it does not count as a restart. Shrinking happens in preemption (`preempt`), which prefers
//! shrinking a gang within its range to stopping it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uni_core::model::{
    Allocation, EventType, ReplicaPhase, ResourceAmounts, StopNotice, UnixMillis, WorkloadRef,
    WorkloadSpec,
};
use uni_placement::ReplicaRequest;

use super::admission;
use super::pass::Pass;
use super::preempt::{tell, Reason};
use super::status::object_ref;
use crate::cache::State;

/// Between looks for room to grow into.
const CHECK_PERIOD: Duration = Duration::from_secs(1);

/// Jobs that could grow, since when.
#[derive(Default)]
pub struct Growth {
    since: HashMap<WorkloadRef, Instant>,
    last_check: Option<Instant>,
}

impl Growth {
    /// Looks for jobs to grow when nothing waits (`idle`); returns when to look again.
    pub fn check(
        &mut self,
        pass: &mut Pass<'_>,
        st: &mut State,
        now: Instant,
        idle: bool,
        window: Duration,
    ) -> Option<Instant> {
        if !idle {
            self.since.clear();
            return None;
        }
        if let Some(at) = self.last_check.filter(|at| now < *at + CHECK_PERIOD) {
            // Looked too recently: look again when the period is up, or this idle spell
            // (room freed just after a look) would never be looked at.
            let again = at + CHECK_PERIOD;
            return Some(self.next_due(window, now).map_or(again, |d| d.min(again)));
        }
        self.last_check = Some(now);
        let jobs: Vec<(WorkloadRef, u32, u32, u32)> = st
            .workloads()
            .iter()
            .filter_map(|(r, w)| match &w.value.spec {
                WorkloadSpec::Training(t) if !w.value.status.phase.is_terminal() => {
                    let n = st.snapshot().replicas_of(r) as u32;
                    (n > 0 && n < t.workers.max).then_some((
                        r.clone(),
                        n,
                        t.workers.max,
                        t.grace_period_seconds,
                    ))
                }
                _ => None,
            })
            .collect();
        let mut growable = HashMap::new();
        for (r, n, max, grace) in jobs {
            let allocs: Vec<Allocation> = st.allocations_of(&r).into_iter().cloned().collect();
            let settled = allocs.iter().all(|a| {
                a.notice.is_none()
                    && st.status(&r, a.replica).is_some_and(|s| {
                        s.allocation_id == a.id
                            && matches!(s.phase, ReplicaPhase::Running | ReplicaPhase::Ready)
                    })
            });
            if !settled {
                continue;
            }
            let Some(more) = room_for(pass, st, &r, max - n) else {
                continue;
            };
            let since = *self.since.get(&r).unwrap_or(&now);
            if now.duration_since(since) < window {
                growable.insert(r, since);
                continue;
            }
            let to = n + more;
            let message = format!(
                "growing from {n} to {to} workers (restarting with WORLD_SIZE={to}): room stayed \
                 free for {}s",
                window.as_secs()
            );
            let deadline = UnixMillis(pass.now.0 + i64::from(grace) * 1000);
            let notice = StopNotice {
                reason: Reason::Resized.as_str().into(),
                message: message.clone(),
                by: String::new(),
                deadline,
                resize_to: Some(to),
            };
            tell(pass, st, allocs, &notice);
            pass.metrics
                .preemptions
                .with_label_values(&[Reason::Resized.as_str()])
                .inc();
            if let Some(w) = st.workload(&r).map(|w| w.value.clone()) {
                pass.event(object_ref(&w), EventType::Normal, "Resizing", message);
            }
        }
        self.since = growable;
        self.next_due(window, now)
    }

    fn next_due(&self, window: Duration, now: Instant) -> Option<Instant> {
        let due = self.since.values().map(|s| *s + window).min()?;
        Some(due.max(now + CHECK_PERIOD))
    }
}

/// The most extra workers (up to `up_to`) of job `r` that fit now, on nodes and in its
/// queue's quota.
fn room_for(pass: &Pass<'_>, st: &mut State, r: &WorkloadRef, up_to: u32) -> Option<u32> {
    let w = st.workload(r)?.value.clone();
    let req = ReplicaRequest::from_workload(&w);
    for m in (1..=up_to).rev() {
        let reqs = vec![req.clone(); m as usize];
        let Ok(members) = st.reserve_gang(&reqs, pass.policy, pass.mix, |i, d| Allocation {
            id: format!("grow-trial.{i}"),
            node: d.node.clone(),
            devices: d.devices.clone(),
            compute_milli: req.compute_milli,
            memory_bytes: req.memory_bytes,
            queue: w.spec.queue().to_string(),
            ..Allocation::default()
        }) else {
            continue;
        };
        let held = members.iter().fold(ResourceAmounts::ZERO, |acc, m| {
            acc.saturating_add(&m.allocation.amounts())
        });
        let refused = admission::refusal(pass, st, &w, &held, true).is_some();
        st.unreserve_gang(&members);
        if !refused {
            return Some(m);
        }
    }
    None
}
