//! A workload resource's status from what Universal reports: pure, so every rule about
//! conditions is unit-tested without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use uni_proto::v1 as pb;

use super::conditions::{merge, Computed};
use crate::crd::status::{condition, DevicePlacement, ReplicaPlacement};
use crate::crd::WorkloadStatus;

/// Whether Universal took the resource's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Not mirrored (the Universal object, if any, keeps its previous spec).
    Rejected {
        reason: String,
        message: String,
    },
}

/// The status to write. `observed` is the Universal workload as last read or written (None
/// when it does not exist or is not ours).
pub fn workload_status(
    previous: Option<&WorkloadStatus>,
    generation: Option<i64>,
    verdict: &Verdict,
    observed: Option<&pb::Workload>,
    now: &Time,
) -> WorkloadStatus {
    let mut computed = Vec::with_capacity(4);
    match verdict {
        Verdict::Accepted => computed.push(Computed::new(
            condition::ACCEPTED,
            true,
            "Accepted",
            "mirrored as a Universal workload",
        )),
        Verdict::Rejected { reason, message } => computed.push(Computed::new(
            condition::ACCEPTED,
            false,
            reason,
            message.clone(),
        )),
    }
    let mut status = WorkloadStatus {
        observed_generation: generation,
        ..WorkloadStatus::default()
    };
    match observed {
        Some(w) => {
            let s = w.status.clone().unwrap_or_default();
            let phase = pb::WorkloadPhase::try_from(s.phase).unwrap_or_default();
            let training = matches!(w.spec, Some(pb::workload::Spec::Training(_)));
            computed.push(scheduled(&s, phase));
            computed.push(ready(&s, phase, training));
            computed.push(failed(&s, phase, verdict));
            status.phase = Some(phase_name(phase).to_string());
            status.replicas = Some(s.replicas_placed);
            status.ready_replicas = Some(s.replicas_ready);
            status.desired_replicas = Some(s.replicas_desired);
            status.placements = s.replicas.iter().map(placement).collect();
            status.universal_uid = w.meta.as_ref().map(|m| m.uid.clone());
            status.cost_per_hour = Some(s.cost_per_hour);
            status.endpoint = Some(s.endpoint.clone()).filter(|e| !e.is_empty());
        }
        None => {
            computed.push(Computed::new(
                condition::SCHEDULED,
                false,
                "NotAccepted",
                "the resource is not mirrored in Universal",
            ));
            computed.push(Computed::new(
                condition::READY,
                false,
                "NotAccepted",
                "the resource is not mirrored in Universal",
            ));
            computed.push(failed(
                &pb::WorkloadStatus::default(),
                pb::WorkloadPhase::Unspecified,
                verdict,
            ));
        }
    }
    let old = previous.map_or(&[][..], |p| &p.conditions[..]);
    status.conditions = merge(old, computed, generation, now);
    status
}

fn scheduled(s: &pb::WorkloadStatus, phase: pb::WorkloadPhase) -> Computed {
    use pb::WorkloadPhase as P;
    let (placed, desired) = (s.replicas_placed, s.replicas_desired);
    let nodes = {
        let mut n: Vec<&str> = s.replicas.iter().map(|r| r.node.as_str()).collect();
        n.sort_unstable();
        n.dedup();
        n.join(", ")
    };
    if phase == P::Succeeded {
        return Computed::new(
            condition::SCHEDULED,
            true,
            "Completed",
            "the job ran to completion",
        );
    }
    if desired == 0 {
        return Computed::new(
            condition::SCHEDULED,
            true,
            "ScaledToZero",
            "no replicas wanted",
        );
    }
    if placed >= desired {
        return Computed::new(
            condition::SCHEDULED,
            true,
            "Scheduled",
            format!("{placed} of {desired} placed on {nodes}"),
        );
    }
    let reason = if !s.reason.is_empty() {
        s.reason.as_str()
    } else if placed > 0 {
        "PartiallyScheduled"
    } else {
        "Pending"
    };
    let message = if s.message.is_empty() {
        format!("{placed} of {desired} placed")
    } else {
        format!("{placed} of {desired} placed: {}", s.message)
    };
    Computed::new(condition::SCHEDULED, false, reason, message)
}

fn ready(s: &pb::WorkloadStatus, phase: pb::WorkloadPhase, training: bool) -> Computed {
    use pb::WorkloadPhase as P;
    let (ready, desired) = (s.replicas_ready, s.replicas_desired);
    let counts = format!(
        "{ready} of {desired} {}",
        if training { "running" } else { "ready" }
    );
    let is_ready = match phase {
        P::Ready => true,
        P::Succeeded => training,
        P::Running => training && ready >= desired && desired > 0,
        _ => false,
    };
    let reason = match phase {
        P::Succeeded => "Succeeded",
        _ if is_ready => {
            if training {
                "Running"
            } else {
                "Ready"
            }
        }
        other => phase_name(other),
    };
    Computed::new(condition::READY, is_ready, reason, counts)
}

fn failed(s: &pb::WorkloadStatus, phase: pb::WorkloadPhase, verdict: &Verdict) -> Computed {
    if let Verdict::Rejected { reason, message } = verdict {
        return Computed::new(condition::FAILED, true, reason, message.clone());
    }
    if phase == pb::WorkloadPhase::Failed {
        let reason = if s.reason.is_empty() {
            "Failed"
        } else {
            &s.reason
        };
        return Computed::new(condition::FAILED, true, reason, s.message.clone());
    }
    Computed::new(condition::FAILED, false, "NoFailure", "")
}

fn placement(r: &pb::ReplicaStatus) -> ReplicaPlacement {
    ReplicaPlacement {
        replica: r.replica,
        node: r.node.clone(),
        address: r.address.clone(),
        port: r.port,
        compute_milli: r.compute_milli,
        memory_bytes: r.memory_bytes,
        devices: r
            .devices
            .iter()
            .map(|d| DevicePlacement {
                index: d.index,
                uuid: d.uuid.clone(),
                share_milli: d.share_milli,
            })
            .collect(),
        phase: replica_phase_name(pb::ReplicaPhase::try_from(r.phase).unwrap_or_default())
            .to_string(),
    }
}

pub fn phase_name(p: pb::WorkloadPhase) -> &'static str {
    use pb::WorkloadPhase as P;
    match p {
        P::Unspecified | P::Pending => "Pending",
        P::Scheduled => "Scheduled",
        P::Running => "Running",
        P::Ready => "Ready",
        P::Succeeded => "Succeeded",
        P::Failed => "Failed",
        P::Terminating => "Terminating",
        P::Preempted => "Preempted",
    }
}

fn replica_phase_name(p: pb::ReplicaPhase) -> &'static str {
    use pb::ReplicaPhase as P;
    match p {
        P::Unspecified | P::Pending => "Pending",
        P::Starting => "Starting",
        P::Running => "Running",
        P::Ready => "Ready",
        P::Succeeded => "Succeeded",
        P::Failed => "Failed",
        P::OomKilled => "OOMKilled",
        P::Preempted => "Preempted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::conditions::is_true;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::from_second(1_000).expect("time"))
    }

    fn workload(phase: pb::WorkloadPhase, placed: u32, ready: u32, desired: u32) -> pb::Workload {
        pb::Workload {
            meta: Some(pb::ObjectMeta {
                uid: "u-1".into(),
                ..pb::ObjectMeta::default()
            }),
            spec: Some(pb::workload::Spec::Inference(
                pb::InferenceServiceSpec::default(),
            )),
            status: Some(pb::WorkloadStatus {
                phase: phase as i32,
                replicas_placed: placed,
                replicas_ready: ready,
                replicas_desired: desired,
                replicas: (0..placed)
                    .map(|i| pb::ReplicaStatus {
                        replica: i,
                        node: format!("node-{i}"),
                        phase: pb::ReplicaPhase::Ready as i32,
                        ..pb::ReplicaStatus::default()
                    })
                    .collect(),
                ..pb::WorkloadStatus::default()
            }),
        }
    }

    fn get<'a>(
        s: &'a WorkloadStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition")
    }

    #[test]
    fn ready_service_reports_every_condition() {
        let w = workload(pb::WorkloadPhase::Ready, 2, 2, 2);
        let s = workload_status(None, Some(3), &Verdict::Accepted, Some(&w), &now());
        assert_eq!(s.observed_generation, Some(3));
        assert!(is_true(&s.conditions, condition::ACCEPTED));
        assert!(is_true(&s.conditions, condition::SCHEDULED));
        assert!(is_true(&s.conditions, condition::READY));
        assert!(!is_true(&s.conditions, condition::FAILED));
        assert_eq!(s.placements.len(), 2);
        assert_eq!(s.placements[1].node, "node-1");
        assert_eq!(s.placements[1].phase, "Ready");
        assert_eq!((s.replicas, s.ready_replicas), (Some(2), Some(2)));
        assert_eq!(s.universal_uid.as_deref(), Some("u-1"));
        assert!(s
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn pending_carries_universal_reason() {
        let mut w = workload(pb::WorkloadPhase::Pending, 0, 0, 1);
        if let Some(st) = w.status.as_mut() {
            st.reason = "Unschedulable".into();
            st.message = "no node has 80Gi of device memory free".into();
        }
        let s = workload_status(None, Some(1), &Verdict::Accepted, Some(&w), &now());
        let c = get(&s, condition::SCHEDULED);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "Unschedulable")
        );
        assert!(c.message.contains("80Gi"));
        assert_eq!(get(&s, condition::READY).reason, "Pending");
    }

    #[test]
    fn training_is_ready_when_every_worker_runs() {
        let mut w = workload(pb::WorkloadPhase::Running, 4, 3, 4);
        w.spec = Some(pb::workload::Spec::Training(pb::TrainingJobSpec::default()));
        let s = workload_status(None, Some(1), &Verdict::Accepted, Some(&w), &now());
        assert!(!is_true(&s.conditions, condition::READY));
        if let Some(st) = w.status.as_mut() {
            st.replicas_ready = 4;
        }
        let s = workload_status(None, Some(1), &Verdict::Accepted, Some(&w), &now());
        assert!(is_true(&s.conditions, condition::READY));
        assert_eq!(get(&s, condition::READY).reason, "Running");
    }

    #[test]
    fn failure_and_rejection_set_failed() {
        let mut w = workload(pb::WorkloadPhase::Failed, 0, 0, 1);
        if let Some(st) = w.status.as_mut() {
            st.reason = "BackoffLimitExceeded".into();
        }
        let s = workload_status(None, Some(1), &Verdict::Accepted, Some(&w), &now());
        assert_eq!(get(&s, condition::FAILED).reason, "BackoffLimitExceeded");

        let rejected = Verdict::Rejected {
            reason: "InvalidSpec".into(),
            message: "spec.template.env[0].name: RANK is set by Universal".into(),
        };
        let s = workload_status(None, Some(2), &rejected, None, &now());
        let accepted = get(&s, condition::ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(accepted.message.contains("RANK"));
        assert!(is_true(&s.conditions, condition::FAILED));
        assert_eq!(get(&s, condition::SCHEDULED).reason, "NotAccepted");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn unchanged_status_is_equal_so_no_write_happens() {
        let w = workload(pb::WorkloadPhase::Ready, 1, 1, 1);
        let first = workload_status(None, Some(1), &Verdict::Accepted, Some(&w), &now());
        let later = Time(Timestamp::from_second(2_000).expect("time"));
        let again = workload_status(Some(&first), Some(1), &Verdict::Accepted, Some(&w), &later);
        assert_eq!(first, again);
    }
}
