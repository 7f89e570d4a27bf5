//! What placing replicas takes, shared by inference services and training jobs: why a
//! placement failed, room held for a starving workload, making room by preemption, the
//! allocation record and its host port, queuing the write, and recording the outcome.

use std::time::Instant;

use uni_core::model::{Allocation, EventType, UnixMillis, Workload, WorkloadRef};
use uni_placement::{Decision, ReplicaRequest, Unschedulable};

use super::pass::Pass;
use super::preempt;
use super::status::{object_ref, set_schedulable};
use crate::cache::State;

/// Why a workload (or part of it) could not be placed.
pub(super) struct Failure {
    /// For people: status message and event.
    pub(super) message: String,
    /// For the failures metric: the most common filter reason, or "queue quota".
    reason: String,
    /// Room is held for another workload (not a lack of room).
    pub(super) held: bool,
}

impl From<Unschedulable> for Failure {
    fn from(u: Unschedulable) -> Self {
        let reason = u
            .reasons
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or_else(|| "no nodes".to_string(), |(r, _)| r.clone());
        Self {
            message: u.to_string(),
            reason,
            held: false,
        }
    }
}

impl Failure {
    pub(super) fn quota(message: String) -> Self {
        Self {
            message,
            reason: "queue quota".into(),
            held: false,
        }
    }
}

/// Why `w` may not be placed now although it might fit: capacity is held for a workload of
/// its queue that waited past the starvation bound and comes before it.
pub(super) fn held_for(
    pass: &Pass<'_>,
    st: &State,
    r: &WorkloadRef,
    w: &Workload,
) -> Option<Failure> {
    let (s, _) = pass.starving.get(w.spec.queue()).filter(|(s, _)| s != r)?;
    let sw = &st.workload(s)?.value;
    let before = (-sw.spec.priority(), sw.meta.created.0) < (-w.spec.priority(), w.meta.created.0);
    if w.spec.preemptible() || !before {
        return None;
    }
    Some(Failure {
        message: format!(
            "capacity is held for {s}, which has waited {}s (past the starvation bound); only \
             preemptible work runs ahead of it",
            pass.now.millis_since(sw.meta.created) / 1000
        ),
        reason: "held for a starving workload".into(),
        held: true,
    })
}

/// Whether `w` has waited past the starvation bound.
fn starving(pass: &Pass<'_>, w: &Workload) -> bool {
    pass.now.millis_since(w.meta.created)
        >= u64::try_from(pass.starvation_after.as_millis()).unwrap_or(u64::MAX)
}

/// After `failure`, tries to make room by preemption (unless `w` already waits for victims);
/// returns the failure to record, which then says what was done.
#[allow(clippy::too_many_arguments)]
pub(super) fn preempt_for(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    req: &ReplicaRequest,
    workers: u32,
    failure: Failure,
    may_help: bool,
) -> Failure {
    if st.is_nominated(&r.to_string()) {
        return Failure {
            message: format!(
                "waiting for the work it preempted to stop ({})",
                failure.message
            ),
            reason: "waiting for preemption".into(),
            held: false,
        };
    }
    let long = starving(pass, w);
    let queue = w.spec.queue();
    if long && may_help && !pass.starving.contains_key(queue) {
        pass.starving
            .insert(queue.to_string(), (r.clone(), pass.now));
    }
    if !may_help {
        return failure;
    }
    // Only the workload capacity is held for may stop work of its own priority: were every
    // long waiter allowed to, they would take turns stopping each other.
    // And only work placed since the room was held for it: work that ran before keeps running
    // and frees its room as it ends, so holding room costs little work.
    let held_since = pass
        .starving
        .get(queue)
        .filter(|(s, _)| s == r)
        .map(|(_, since)| *since);
    match preempt::make_room(pass, st, r, w, req, workers, held_since) {
        Some(message) => Failure {
            message,
            reason: "waiting for preemption".into(),
            held: false,
        },
        None => failure,
    }
}

/// Host ports handed to replicas (`PORT`, a training job's `MASTER_PORT`).
const PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

pub(super) fn delete(pass: &mut Pass<'_>, st: &mut State, id: &str) {
    if let Some(alloc) = st.release(id) {
        pass.plan.deletes.push(alloc);
    }
}

pub(super) fn new_allocation(
    w: &Workload,
    replica: u32,
    req: &ReplicaRequest,
    d: &Decision,
    now: UnixMillis,
) -> Allocation {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    Allocation {
        id: format!(
            "{}.{}.{replica}.{}",
            w.meta.namespace,
            w.meta.name,
            &nonce[..8]
        ),
        namespace: w.meta.namespace.clone(),
        workload: w.meta.name.clone(),
        replica,
        node: d.node.clone(),
        compute_milli: req.compute_milli,
        memory_bytes: req.memory_bytes,
        devices: d.devices.clone(),
        models: req.allowed_models(),
        port: 0,
        workload_uid: w.meta.uid.clone(),
        generation: w.meta.generation,
        created: now,
        queue: w.spec.queue().to_string(),
        env: Vec::new(),
        notice: None,
        draining: None,
        template_hash: String::new(),
    }
}

/// The lowest host port of [`PORTS`] no allocation on `node` holds.
pub(super) fn free_port(st: &State, node: &str) -> u16 {
    PORTS
        .clone()
        .find(|&p| !st.port_taken(node, p))
        .unwrap_or(0)
}

/// Reserves a placed replica and queues its write.
pub(super) fn commit(pass: &mut Pass<'_>, st: &mut State, alloc: Allocation, w: &Workload) {
    st.reserve_inflight(alloc.clone());
    pass.budget = pass.budget.saturating_sub(1);
    pass.plan.puts.push((alloc, w.meta.created.0));
}

/// Records the outcome of an attempt: backoff and an Unschedulable condition and event when
/// something did not fit, or clears them once everything is placed.
pub(super) fn finish(
    pass: &mut Pass<'_>,
    st: &State,
    r: &WorkloadRef,
    w: &Workload,
    failed: Option<Failure>,
    now: Instant,
) {
    match failed {
        Some(Failure {
            message, reason, ..
        }) => {
            pass.backoffs.fail(r, now);
            pass.metrics.failures.with_label_values(&[&reason]).inc();
            if w.status.message != message {
                pass.event(
                    object_ref(w),
                    EventType::Warning,
                    "FailedScheduling",
                    message.clone(),
                );
                pass.update_status(st, r, |w, now| set_schedulable(w, now, Some(&message)));
            }
        }
        None => {
            pass.backoffs.succeed(r);
            if pass
                .starving
                .get(w.spec.queue())
                .is_some_and(|(s, _)| s == r)
            {
                pass.starving.remove(w.spec.queue());
            }
            if matches!(w.status.reason.as_str(), "Unschedulable" | "Preempted") {
                pass.event(
                    object_ref(w),
                    EventType::Normal,
                    "Scheduled",
                    "all replicas placed".into(),
                );
                pass.update_status(st, r, |w, now| set_schedulable(w, now, None));
            }
        }
    }
}
