//! What a pass sets on a workload's status, and how it names the workload in events.

use uni_core::model::{
    condition::{set_condition, types},
    Condition, ConditionStatus, ObjectRef, UnixMillis, Workload, WorkloadPhase,
};

/// Sets the Unschedulable condition (or clears it) and the matching phase and reason.
pub fn set_schedulable(w: &mut Workload, now: UnixMillis, unschedulable: Option<&str>) {
    let generation = w.meta.generation;
    let condition = match unschedulable {
        Some(message) => Condition::new(
            types::UNSCHEDULABLE,
            ConditionStatus::True,
            "Unschedulable",
            message,
        ),
        None => Condition::new(
            types::UNSCHEDULABLE,
            ConditionStatus::False,
            "Scheduled",
            "",
        ),
    };
    set_condition(
        &mut w.status.conditions,
        Condition {
            observed_generation: generation,
            ..condition
        },
        now,
    );
    w.status.observed_generation = generation;
    match unschedulable {
        Some(message) => {
            w.status.reason = "Unschedulable".into();
            w.status.message = message.to_string();
        }
        None if matches!(w.status.reason.as_str(), "Unschedulable" | "Preempted") => {
            w.status.reason.clear();
            w.status.message.clear();
            if matches!(
                w.status.phase,
                WorkloadPhase::Pending | WorkloadPhase::Preempted
            ) {
                w.status.phase = WorkloadPhase::Scheduled;
            }
        }
        None => {}
    }
}

pub fn object_ref(w: &Workload) -> ObjectRef {
    ObjectRef {
        kind: w.kind().to_string(),
        namespace: w.meta.namespace.clone(),
        name: w.meta.name.clone(),
        uid: w.meta.uid.clone(),
    }
}
