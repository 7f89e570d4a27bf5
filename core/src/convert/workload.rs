//! Workloads and their status.

use uni_proto::v1 as pb;

use super::common::{
    opt_timestamp_from_proto, opt_timestamp_to_proto, timestamp_from_proto, timestamp_to_proto,
};
use super::{enum_value, join, list, opt, port, root_conversions, FromProto};
use crate::error::{Error, FieldErrors};
use crate::model::{
    DeviceBinding, ReplicaPhase, ReplicaView, TemplateRevision, Workload, WorkloadKind,
    WorkloadPhase, WorkloadSpec, WorkloadStatus, DEFAULT_NAMESPACE,
};

impl From<&Workload> for pb::Workload {
    fn from(w: &Workload) -> Self {
        let spec = match &w.spec {
            WorkloadSpec::Inference(s) => pb::workload::Spec::Inference(s.into()),
            WorkloadSpec::Training(s) => pb::workload::Spec::Training(s.into()),
        };
        Self {
            meta: Some((&w.meta).into()),
            spec: Some(spec),
            status: Some((&w.status).into()),
        }
    }
}

impl FromProto<pb::Workload> for Workload {
    fn from_proto(p: &pb::Workload, path: &str, errs: &mut FieldErrors) -> Self {
        let mut meta: crate::model::ObjectMeta = opt(p.meta.as_ref(), path, "meta", errs);
        if meta.namespace.is_empty() {
            meta.namespace = DEFAULT_NAMESPACE.to_string();
        }
        // Both kinds report under `spec`, the name users know the spec by.
        let spec_path = join(path, "spec");
        let spec = match &p.spec {
            Some(pb::workload::Spec::Inference(s)) => {
                WorkloadSpec::Inference(FromProto::from_proto(s, &spec_path, errs))
            }
            Some(pb::workload::Spec::Training(s)) => {
                WorkloadSpec::Training(FromProto::from_proto(s, &spec_path, errs))
            }
            None => {
                errs.push(spec_path, "required: set inference or training");
                WorkloadSpec::default()
            }
        };
        Self {
            meta,
            spec,
            status: opt(p.status.as_ref(), path, "status", errs),
        }
    }
}

root_conversions!(Workload, pb::Workload);

impl From<WorkloadKind> for pb::WorkloadKind {
    fn from(k: WorkloadKind) -> Self {
        match k {
            WorkloadKind::InferenceService => Self::InferenceService,
            WorkloadKind::TrainingJob => Self::TrainingJob,
        }
    }
}

/// The `kind` filter of list and watch requests: `None` for every kind.
pub fn workload_kind_filter(kind: i32) -> Result<Option<WorkloadKind>, Error> {
    match pb::WorkloadKind::try_from(kind) {
        Ok(pb::WorkloadKind::Unspecified) => Ok(None),
        Ok(pb::WorkloadKind::InferenceService) => Ok(Some(WorkloadKind::InferenceService)),
        Ok(pb::WorkloadKind::TrainingJob) => Ok(Some(WorkloadKind::TrainingJob)),
        Err(_) => Err(Error::invalid("kind", format!("unknown enum value {kind}"))),
    }
}

impl From<WorkloadPhase> for pb::WorkloadPhase {
    fn from(p: WorkloadPhase) -> Self {
        match p {
            WorkloadPhase::Pending => Self::Pending,
            WorkloadPhase::Scheduled => Self::Scheduled,
            WorkloadPhase::Running => Self::Running,
            WorkloadPhase::Ready => Self::Ready,
            WorkloadPhase::Succeeded => Self::Succeeded,
            WorkloadPhase::Failed => Self::Failed,
            WorkloadPhase::Terminating => Self::Terminating,
            WorkloadPhase::Preempted => Self::Preempted,
        }
    }
}

fn workload_phase(v: i32, path: &str, errs: &mut FieldErrors) -> WorkloadPhase {
    match enum_value(v, path, "phase", errs) {
        Some(pb::WorkloadPhase::Scheduled) => WorkloadPhase::Scheduled,
        Some(pb::WorkloadPhase::Running) => WorkloadPhase::Running,
        Some(pb::WorkloadPhase::Ready) => WorkloadPhase::Ready,
        Some(pb::WorkloadPhase::Succeeded) => WorkloadPhase::Succeeded,
        Some(pb::WorkloadPhase::Failed) => WorkloadPhase::Failed,
        Some(pb::WorkloadPhase::Terminating) => WorkloadPhase::Terminating,
        Some(pb::WorkloadPhase::Preempted) => WorkloadPhase::Preempted,
        _ => WorkloadPhase::Pending,
    }
}

impl From<ReplicaPhase> for pb::ReplicaPhase {
    fn from(p: ReplicaPhase) -> Self {
        match p {
            ReplicaPhase::Pending => Self::Pending,
            ReplicaPhase::Starting => Self::Starting,
            ReplicaPhase::Running => Self::Running,
            ReplicaPhase::Ready => Self::Ready,
            ReplicaPhase::Succeeded => Self::Succeeded,
            ReplicaPhase::Failed => Self::Failed,
            ReplicaPhase::OomKilled => Self::OomKilled,
            ReplicaPhase::Preempted => Self::Preempted,
        }
    }
}

fn replica_phase(v: i32, path: &str, errs: &mut FieldErrors) -> ReplicaPhase {
    match enum_value(v, path, "phase", errs) {
        Some(pb::ReplicaPhase::Starting) => ReplicaPhase::Starting,
        Some(pb::ReplicaPhase::Running) => ReplicaPhase::Running,
        Some(pb::ReplicaPhase::Ready) => ReplicaPhase::Ready,
        Some(pb::ReplicaPhase::Succeeded) => ReplicaPhase::Succeeded,
        Some(pb::ReplicaPhase::Failed) => ReplicaPhase::Failed,
        Some(pb::ReplicaPhase::OomKilled) => ReplicaPhase::OomKilled,
        Some(pb::ReplicaPhase::Preempted) => ReplicaPhase::Preempted,
        _ => ReplicaPhase::Pending,
    }
}

impl From<&DeviceBinding> for pb::DeviceBinding {
    fn from(d: &DeviceBinding) -> Self {
        Self {
            index: d.index,
            uuid: d.uuid.clone(),
            share_milli: d.share_milli,
            memory_bytes: d.memory_bytes,
        }
    }
}

impl FromProto<pb::DeviceBinding> for DeviceBinding {
    fn from_proto(p: &pb::DeviceBinding, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            index: p.index,
            uuid: p.uuid.clone(),
            share_milli: p.share_milli,
            memory_bytes: p.memory_bytes,
        }
    }
}

impl From<&ReplicaView> for pb::ReplicaStatus {
    fn from(r: &ReplicaView) -> Self {
        Self {
            replica: r.replica,
            node: r.node.clone(),
            address: r.address.clone(),
            port: r.port.into(),
            devices: r.devices.iter().map(Into::into).collect(),
            compute_milli: r.compute_milli,
            memory_bytes: r.memory_bytes,
            phase: pb::ReplicaPhase::from(r.phase).into(),
            exit_code: r.exit_code,
            signal: r.signal,
            restarts: r.restarts,
            message: r.message.clone(),
            updated_time: timestamp_to_proto(r.updated),
            generation: r.generation,
            revision: r.revision,
            draining: r.draining,
        }
    }
}

impl FromProto<pb::ReplicaStatus> for ReplicaView {
    fn from_proto(p: &pb::ReplicaStatus, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            replica: p.replica,
            node: p.node.clone(),
            address: p.address.clone(),
            port: port(p.port, path, "port", errs),
            devices: list(&p.devices, path, "devices", errs),
            compute_milli: p.compute_milli,
            memory_bytes: p.memory_bytes,
            generation: p.generation,
            revision: p.revision,
            draining: p.draining,
            phase: replica_phase(p.phase, path, errs),
            exit_code: p.exit_code,
            signal: p.signal,
            restarts: p.restarts,
            message: p.message.clone(),
            updated: timestamp_from_proto(p.updated_time.as_ref()),
        }
    }
}

impl From<&WorkloadStatus> for pb::WorkloadStatus {
    fn from(s: &WorkloadStatus) -> Self {
        Self {
            phase: pb::WorkloadPhase::from(s.phase).into(),
            conditions: s.conditions.iter().map(Into::into).collect(),
            observed_generation: s.observed_generation,
            replicas_desired: s.replicas_desired,
            replicas_placed: s.replicas_placed,
            replicas_ready: s.replicas_ready,
            replicas: s.replicas.iter().map(Into::into).collect(),
            reason: s.reason.clone(),
            message: s.message.clone(),
            restarts: s.restarts,
            start_time: opt_timestamp_to_proto(s.started),
            completion_time: opt_timestamp_to_proto(s.completed),
            cost_per_hour: s.cost_per_hour,
            endpoint: s.endpoint.clone(),
            revision: s.revision,
            updated_replicas: s.updated_replicas,
            updated_ready_replicas: s.updated_ready_replicas,
            rollout: s.rollout.clone(),
            revisions: s
                .revisions
                .iter()
                .map(|r| pb::Revision {
                    revision: r.revision,
                    hash: r.hash.clone(),
                    created_time: timestamp_to_proto(r.created),
                    summary: r.summary.clone(),
                })
                .collect(),
        }
    }
}

impl FromProto<pb::WorkloadStatus> for WorkloadStatus {
    fn from_proto(p: &pb::WorkloadStatus, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            phase: workload_phase(p.phase, path, errs),
            conditions: list(&p.conditions, path, "conditions", errs),
            observed_generation: p.observed_generation,
            replicas_desired: p.replicas_desired,
            replicas_placed: p.replicas_placed,
            replicas_ready: p.replicas_ready,
            replicas: list(&p.replicas, path, "replicas", errs),
            reason: p.reason.clone(),
            message: p.message.clone(),
            restarts: p.restarts,
            started: opt_timestamp_from_proto(p.start_time.as_ref()),
            completed: opt_timestamp_from_proto(p.completion_time.as_ref()),
            cost_per_hour: p.cost_per_hour,
            endpoint: p.endpoint.clone(),
            revision: p.revision,
            updated_replicas: p.updated_replicas,
            updated_ready_replicas: p.updated_ready_replicas,
            rollout: p.rollout.clone(),
            revisions: p
                .revisions
                .iter()
                .map(|r| TemplateRevision {
                    revision: r.revision,
                    hash: r.hash.clone(),
                    created: timestamp_from_proto(r.created_time.as_ref()),
                    template: None,
                    summary: r.summary.clone(),
                })
                .collect(),
        }
    }
}
