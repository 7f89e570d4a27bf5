//! Reconciles one workload: inference services in [`super::inference`]; places a
//! training job's workers as one gang (all or none, elastic between min and max), removes
//! what is no longer wanted, and restarts or finishes training jobs from their workers' status.

use std::time::Instant;

use uni_core::model::WorkloadRef;
use uni_core::model::{
    Allocation, EnvVar, EventType, ReplicaPhase, ReplicaView, ResourceAmounts, TrainingJobSpec,
    Workload, WorkloadPhase, WorkloadSpec,
};
use uni_core::store::keys::{StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{Compare, CompareOp, Txn, TxnOp};
use uni_placement::ReplicaRequest;

use super::expiry::Expiries;
use super::pass::Pass;
use super::placing::{
    commit, delete, finish, free_port, held_for, new_allocation, preempt_for, Failure,
};
use super::status::object_ref;
use super::{admission, inference};
use crate::cache::State;

pub fn reconcile(pass: &mut Pass<'_>, st: &mut State, r: &WorkloadRef, now: Instant) {
    let Some(stored) = st.workload(r) else {
        remove_workload(pass, st, r);
        return;
    };
    let w = stored.value.clone();
    remove_stale(pass, st, r, &w);
    match &w.spec {
        WorkloadSpec::Inference(spec) => inference::reconcile(pass, st, r, &w, spec, now),
        WorkloadSpec::Training(spec) => training(pass, st, r, &w, spec, now),
    }
}

/// A finished job past its time-to-live is deleted (only if unchanged since it was read);
/// the deletion then removes its statuses as for any deleted workload.
fn expire(pass: &mut Pass<'_>, st: &State, r: &WorkloadRef, w: &Workload, now: Instant) {
    let (Some(ttl), Some(completed)) = (Expiries::ttl(w, pass.finished_ttl), w.status.completed)
    else {
        return;
    };
    if !pass.expiries.check(r, completed, ttl, pass.now, now) {
        return;
    }
    let (Some(stored), Ok(key)) = (
        st.workload(r),
        WorkloadKey::new(r.namespace.clone(), r.name.clone()),
    ) else {
        return;
    };
    let key = key.format();
    pass.plan.singles.push(
        Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                stored.mod_revision,
            )])
            .and_then([TxnOp::delete(key)]),
    );
    pass.event(
        object_ref(w),
        EventType::Normal,
        "Expired",
        format!(
            "finished {}s ago; deleted after its time-to-live of {}s",
            pass.now.millis_since(completed) / 1000,
            ttl.as_secs()
        ),
    );
}

/// The workload is gone: free its allocations and forget its replica statuses.
fn remove_workload(pass: &mut Pass<'_>, st: &mut State, r: &WorkloadRef) {
    pass.backoffs.succeed(r);
    pass.expiries.forget(r);
    delete_all(pass, st, r);
    let replicas = st.replicas_with_status(r);
    for replica in replicas {
        st.forget_status(r, replica);
        if let Ok(k) = StatusKey::new(r.namespace.clone(), r.name.clone(), replica) {
            pass.plan
                .singles
                .push(Txn::new().and_then([TxnOp::delete(k.format())]));
        }
    }
}

/// Allocations placed for an earlier workload of the same name (deleted and created again
/// while this replica did not see the delete, e.g. across a failover) are removed.
fn remove_stale(pass: &mut Pass<'_>, st: &mut State, r: &WorkloadRef, w: &Workload) {
    let stale: Vec<String> = st
        .allocations_of(r)
        .iter()
        .filter(|a| !a.workload_uid.is_empty() && a.workload_uid != w.meta.uid)
        .map(|a| a.id.clone())
        .collect();
    for id in stale {
        delete(pass, st, &id);
    }
}

fn delete_all(pass: &mut Pass<'_>, st: &mut State, r: &WorkloadRef) {
    let ids: Vec<String> = st.allocations_of(r).iter().map(|a| a.id.clone()).collect();
    for id in ids {
        delete(pass, st, &id);
    }
}

fn training(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    spec: &TrainingJobSpec,
    now: Instant,
) {
    if w.status.phase.is_terminal() {
        pass.backoffs.succeed(r);
        delete_all(pass, st, r);
        expire(pass, st, r, w, now);
        return;
    }
    let allocs: Vec<Allocation> = st.allocations_of(r).into_iter().cloned().collect();
    if allocs.iter().any(|a| a.notice.is_some()) {
        // Stopping for a preemption or resize: `stopping` removes it, then it is placed again.
        return;
    }
    if !allocs.is_empty() {
        check_running_job(pass, st, r, w, spec, &allocs);
        return;
    }
    if let Some(f) = held_for(pass, st, r, w) {
        return finish(pass, st, r, w, Some(f), now);
    }
    let req = ReplicaRequest::from_workload(w);
    let created = pass.now;
    let mut last: Option<(Failure, bool)> = None;
    // Elastic: the largest gang that fits, from max down to min workers.
    for n in (spec.workers.min.max(1)..=spec.workers.max.max(1)).rev() {
        let reqs = vec![req.clone(); n as usize];
        let started = Instant::now();
        let placed = st.reserve_gang(&reqs, pass.policy, pass.mix, |i, d| {
            new_allocation(w, i as u32, &req, d, created)
        });
        pass.metrics
            .placement_duration
            .observe(started.elapsed().as_secs_f64());
        match placed {
            Ok(members) => {
                // The members are counted in the queue's usage already.
                let held = members.iter().fold(ResourceAmounts::ZERO, |acc, m| {
                    acc.saturating_add(&m.allocation.amounts())
                });
                if let Some((why, may_help)) = admission::refusal(pass, st, w, &held, true) {
                    // Undo the gang's reservation: it holds nothing unless all of it runs.
                    st.unreserve_gang(&members);
                    last = Some((Failure::quota(why), may_help));
                    continue;
                }
                let members: Vec<Allocation> = members.into_iter().map(|m| m.allocation).collect();
                for alloc in with_rendezvous(st, members) {
                    commit(pass, st, alloc, w);
                }
                finish(pass, st, r, w, None, now);
                return;
            }
            Err(u) => last = Some((u.into(), true)),
        }
    }
    let min = spec.workers.min.max(1);
    let failed = last.map(|(f, may_help)| preempt_for(pass, st, r, w, &req, min, f, may_help));
    finish(pass, st, r, w, failed, now);
}

/// A placed job: complete it when every worker succeeded; restart the gang (or fail the job
/// past its retry limit) when a worker failed or was lost with its node.
fn check_running_job(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    spec: &TrainingJobSpec,
    allocs: &[Allocation],
) {
    let world = allocs
        .iter()
        .flat_map(|a| &a.env)
        .find(|e| e.name == "WORLD_SIZE")
        .and_then(|e| e.value.parse::<usize>().ok())
        .unwrap_or(allocs.len());
    let phases: Vec<Option<ReplicaPhase>> = allocs
        .iter()
        .map(|a| {
            st.status(r, a.replica)
                .filter(|s| s.allocation_id == a.id)
                .map(|s| s.phase)
        })
        .collect();
    let succeeded = phases.iter().all(|p| *p == Some(ReplicaPhase::Succeeded));
    let failed = phases
        .iter()
        .flatten()
        .find(|p| matches!(p, ReplicaPhase::Failed | ReplicaPhase::OomKilled));
    if allocs.len() == world && succeeded {
        // Keep where each worker ran: the allocations go, but logs stay readable.
        let finished: Vec<ReplicaView> = allocs
            .iter()
            .map(|a| {
                let address = st
                    .node(&a.node)
                    .map_or("", |n| n.value.status.address.as_str());
                ReplicaView::new(a, address, st.status(r, a.replica))
            })
            .collect();
        pass.update_status(st, r, |w, now| {
            w.status.phase = WorkloadPhase::Succeeded;
            w.status.completed = Some(now);
            w.status.replicas = finished;
        });
        pass.event(
            object_ref(w),
            EventType::Normal,
            "Completed",
            format!("all {world} workers succeeded"),
        );
        delete_all(pass, st, r);
        return;
    }
    let why = match failed {
        Some(p) => format!("a worker ended {p:?}"),
        None if allocs.len() < world => format!("{} of {world} workers lost", world - allocs.len()),
        None => return,
    };
    let restarts = w.status.restarts;
    if restarts >= spec.retry.max_restarts {
        pass.update_status(st, r, |w, now| {
            w.status.phase = WorkloadPhase::Failed;
            w.status.reason = "BackoffLimitExceeded".into();
            w.status.message = format!("{why}; {restarts} restarts used");
            w.status.completed = Some(now);
        });
        pass.event(object_ref(w), EventType::Warning, "Failed", why);
    } else {
        pass.update_status(st, r, |w, _| {
            w.status.restarts = restarts + 1;
            w.status.phase = WorkloadPhase::Pending;
        });
        pass.event(
            object_ref(w),
            EventType::Warning,
            "Restarting",
            format!(
                "{why}; restart {} of {}",
                restarts + 1,
                spec.retry.max_restarts
            ),
        );
    }
    delete_all(pass, st, r);
    st.mark_dirty(r.clone());
}

/// Gives a gang's workers what torchrun expects: ranks, world size, and the address and port
/// of rank 0. Ports are taken as the workers are recorded, so none repeats on a node.
fn with_rendezvous(st: &mut State, mut members: Vec<Allocation>) -> Vec<Allocation> {
    members.sort_by_key(|a| a.replica);
    let world = members.len();
    let master_node = members.first().map(|a| a.node.clone()).unwrap_or_default();
    let master_addr = st
        .node(&master_node)
        .map(|n| n.value.status.address.clone())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| master_node.clone());
    let mut master_port = 0;
    let mut out = Vec::with_capacity(world);
    for (rank, mut a) in members.into_iter().enumerate() {
        a.port = free_port(st, &a.node);
        if rank == 0 {
            master_port = a.port;
        }
        let local_rank = out
            .iter()
            .filter(|o: &&Allocation| o.node == a.node)
            .count();
        a.env = vec![
            EnvVar::new("WORLD_SIZE", world.to_string()),
            EnvVar::new("RANK", rank.to_string()),
            EnvVar::new("LOCAL_RANK", local_rank.to_string()),
            EnvVar::new("MASTER_ADDR", master_addr.clone()),
            EnvVar::new("MASTER_PORT", master_port.to_string()),
        ];
        // Record it now so the next worker on this node gets another port.
        st.reserve(a.clone());
        out.push(a);
    }
    out
}
