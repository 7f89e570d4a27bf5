//! A workload's status as clients read it: the stored status (written by the scheduler) joined
//! with what the cache knows now, its allocations and the agents' replica statuses. Deriving it
//! at read time keeps the store free of a write per replica change.

use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::model::{
    Allocation, Node, ReplicaPhase, ReplicaView, ServiceTemplate, Workload, WorkloadPhase,
    WorkloadSpec,
};

use crate::cache::State;

/// Fills `w.status` with its replicas, counts, cost and the phase they imply.
pub fn overlay_status(state: &State, w: &mut Workload) {
    let r = WorkloadRef {
        namespace: w.meta.namespace.clone(),
        name: w.meta.name.clone(),
    };
    let mut cost = 0.0;
    let current = match &w.spec {
        WorkloadSpec::Inference(s) => Some(ServiceTemplate::of(s).hash()),
        WorkloadSpec::Training(_) => None,
    };
    let (mut updated, mut updated_ready) = (0, 0);
    let replicas: Vec<ReplicaView> = state
        .allocations_of(&r)
        .into_iter()
        .map(|alloc| {
            let node = state.node(&alloc.node).map(|n| &n.value);
            cost += allocation_cost(state.catalog(), node, alloc);
            let address = node.map_or("", |n| n.status.address.as_str());
            let status = state.status(&r, alloc.replica);
            let mut view = ReplicaView::new(alloc, address, status);
            if let Some(hash) = &current {
                let hash_of = if alloc.template_hash.is_empty() {
                    hash.as_str()
                } else {
                    alloc.template_hash.as_str()
                };
                view.revision = w.status.revision_of(hash_of);
                if hash_of == hash && !view.draining && alloc.notice.is_none() {
                    updated += 1;
                    if view.phase == ReplicaPhase::Ready {
                        updated_ready += 1;
                    }
                }
            }
            view
        })
        .collect();
    if let Some(hash) = &current {
        w.status.revision = w.status.revision_of(hash);
        w.status.updated_replicas = updated;
        w.status.updated_ready_replicas = updated_ready;
    }
    let phase = derive_phase(w, &replicas);
    let ready = replicas.iter().filter(|v| is_ready(&w.spec, v)).count();
    let desired = w.spec.desired_replicas();
    let status = &mut w.status;
    status.phase = phase;
    status.replicas_desired = desired;
    status.replicas_placed = count(replicas.len());
    status.replicas_ready = count(ready);
    status.cost_per_hour = cost;
    // A finished job's allocations are gone; the scheduler kept where its replicas ran.
    if !(replicas.is_empty() && status.phase.is_terminal()) {
        status.replicas = replicas;
    }
}

/// An inference service's URL under the gateway at `gateway_url`.
pub fn set_endpoint(gateway_url: &str, w: &mut Workload) {
    if matches!(w.spec, WorkloadSpec::Inference(_)) && !gateway_url.is_empty() {
        w.status.endpoint = format!("{gateway_url}/{}/{}/", w.meta.namespace, w.meta.name);
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Inference: passes readiness. Training: runs.
fn is_ready(spec: &WorkloadSpec, v: &ReplicaView) -> bool {
    match spec {
        WorkloadSpec::Inference(_) => v.phase == ReplicaPhase::Ready,
        WorkloadSpec::Training(_) => matches!(v.phase, ReplicaPhase::Running | ReplicaPhase::Ready),
    }
}

/// The stored phase where only the scheduler can tell (finished, terminating, preempted and
/// not placed again); otherwise what the replicas show.
fn derive_phase(w: &Workload, replicas: &[ReplicaView]) -> WorkloadPhase {
    let stored = w.status.phase;
    if w.meta.deleted.is_some() {
        return WorkloadPhase::Terminating;
    }
    if stored.is_terminal() || stored == WorkloadPhase::Terminating {
        return stored;
    }
    if replicas.is_empty() {
        // Waiting for placement; the stored reason (e.g. Unschedulable) says why.
        return if stored == WorkloadPhase::Preempted {
            stored
        } else {
            WorkloadPhase::Pending
        };
    }
    let started = replicas.iter().any(|v| v.phase != ReplicaPhase::Pending);
    match &w.spec {
        WorkloadSpec::Inference(s) => {
            let ready = replicas
                .iter()
                .filter(|v| v.phase == ReplicaPhase::Ready)
                .count();
            let needed = usize::try_from(s.replicas.min.max(1)).unwrap_or(usize::MAX);
            if ready >= needed {
                WorkloadPhase::Ready
            } else if started {
                WorkloadPhase::Running
            } else {
                WorkloadPhase::Scheduled
            }
        }
        // Exited workers with none running: the scheduler decides between success and a gang
        // restart, and records it in the stored phase; until then the job counts as running.
        WorkloadSpec::Training(_) if started => WorkloadPhase::Running,
        WorkloadSpec::Training(_) => WorkloadPhase::Scheduled,
    }
}

/// Hourly price of one allocation: its compute and memory at the catalog's CPU prices, plus its
/// share of each bound device at that device model's price.
pub fn allocation_cost(catalog: &Catalog, node: Option<&Node>, alloc: &Allocation) -> f64 {
    let devices: f64 = alloc
        .devices
        .iter()
        .map(|d| {
            let model = node.and_then(|n| {
                n.status
                    .inventory
                    .accelerators
                    .iter()
                    .find(|a| a.index == d.index)
            });
            let price = model
                .and_then(|m| catalog.device_usd_per_hour(&m.model))
                .unwrap_or(0.0);
            price * f64::from(d.share_milli) / 1000.0
        })
        .sum();
    catalog.compute_usd_per_hour(alloc.compute_milli)
        + catalog.memory_usd_per_hour(alloc.memory_bytes)
        + devices
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::{InferenceServiceSpec, TrainingJobSpec};

    fn view(phase: ReplicaPhase) -> ReplicaView {
        ReplicaView {
            phase,
            ..ReplicaView::default()
        }
    }

    fn inference(min: u32) -> Workload {
        let mut s = InferenceServiceSpec::default();
        s.replicas.min = min;
        Workload {
            spec: WorkloadSpec::Inference(s),
            ..Workload::default()
        }
    }

    #[test]
    fn phase_follows_replicas() {
        use ReplicaPhase as R;
        use WorkloadPhase as P;
        let w = inference(2);
        assert_eq!(derive_phase(&w, &[]), P::Pending);
        assert_eq!(derive_phase(&w, &[view(R::Pending)]), P::Scheduled);
        assert_eq!(
            derive_phase(&w, &[view(R::Ready), view(R::Starting)]),
            P::Running
        );
        assert_eq!(
            derive_phase(&w, &[view(R::Ready), view(R::Ready)]),
            P::Ready
        );
        // Min 0 still needs one ready replica.
        assert_eq!(derive_phase(&inference(0), &[view(R::Running)]), P::Running);

        let mut job = Workload {
            spec: WorkloadSpec::Training(TrainingJobSpec::default()),
            ..Workload::default()
        };
        assert_eq!(derive_phase(&job, &[view(R::Running)]), P::Running);
        job.status.phase = P::Succeeded;
        assert_eq!(derive_phase(&job, &[view(R::Succeeded)]), P::Succeeded);
        job.status.phase = P::Preempted;
        assert_eq!(derive_phase(&job, &[]), P::Preempted);
        job.meta.deleted = Some(uni_core::model::UnixMillis(1));
        assert_eq!(derive_phase(&job, &[]), P::Terminating);
    }
}
