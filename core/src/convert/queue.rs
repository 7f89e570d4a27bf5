//! Queues and quotas.

use uni_proto::v1 as pb;

use super::common::amounts;
use super::{opt, opt_bytes, opt_milli, root_conversions, FromProto};
use crate::error::FieldErrors;
use crate::model::{priority, Queue, QueueSpec, QueueStatus, Quota};
use crate::quantity::{format_bytes, format_milli};

impl From<&Queue> for pb::Queue {
    fn from(q: &Queue) -> Self {
        Self {
            meta: Some((&q.meta).into()),
            spec: Some((&q.spec).into()),
            status: Some((&q.status).into()),
        }
    }
}

impl FromProto<pb::Queue> for Queue {
    fn from_proto(p: &pb::Queue, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            meta: opt(p.meta.as_ref(), path, "meta", errs),
            spec: opt(p.spec.as_ref(), path, "spec", errs),
            status: opt(p.status.as_ref(), path, "status", errs),
        }
    }
}

root_conversions!(Queue, pb::Queue);

impl From<&QueueSpec> for pb::QueueSpec {
    fn from(s: &QueueSpec) -> Self {
        Self {
            guaranteed: Some((&s.guaranteed).into()),
            max: Some((&s.max).into()),
            priority: Some(s.priority),
            weight: s.weight,
            parent: s.parent.clone(),
            borrowing_limit: Some((&s.borrowing_limit).into()),
            lending_limit: Some((&s.lending_limit).into()),
        }
    }
}

impl FromProto<pb::QueueSpec> for QueueSpec {
    fn from_proto(p: &pb::QueueSpec, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            guaranteed: opt(p.guaranteed.as_ref(), path, "guaranteed", errs),
            max: opt(p.max.as_ref(), path, "max", errs),
            priority: p.priority.unwrap_or(priority::NORMAL),
            weight: p.weight.max(1),
            parent: p.parent.clone(),
            borrowing_limit: opt(p.borrowing_limit.as_ref(), path, "borrowing_limit", errs),
            lending_limit: opt(p.lending_limit.as_ref(), path, "lending_limit", errs),
        }
    }
}

impl From<&Quota> for pb::Quota {
    fn from(q: &Quota) -> Self {
        Self {
            compute: q.compute_milli.map(format_milli).unwrap_or_default(),
            memory: q.memory_bytes.map(format_bytes).unwrap_or_default(),
            devices: q.devices,
            device_memory: q.device_memory_bytes.map(format_bytes).unwrap_or_default(),
        }
    }
}

impl FromProto<pb::Quota> for Quota {
    fn from_proto(p: &pb::Quota, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            compute_milli: opt_milli(&p.compute, path, "compute", errs),
            memory_bytes: opt_bytes(&p.memory, path, "memory", errs),
            devices: p.devices,
            device_memory_bytes: opt_bytes(&p.device_memory, path, "device_memory", errs),
        }
    }
}

impl From<&QueueStatus> for pb::QueueStatus {
    fn from(s: &QueueStatus) -> Self {
        Self {
            usage: amounts(&s.usage),
            pending_workloads: s.pending_workloads,
            running_workloads: s.running_workloads,
            borrowed: amounts(&s.borrowed),
            lent: amounts(&s.lent),
        }
    }
}

impl FromProto<pb::QueueStatus> for QueueStatus {
    fn from_proto(p: &pb::QueueStatus, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            usage: opt(p.usage.as_ref(), path, "usage", errs),
            pending_workloads: p.pending_workloads,
            running_workloads: p.running_workloads,
            borrowed: opt(p.borrowed.as_ref(), path, "borrowed", errs),
            lent: opt(p.lent.as_ref(), path, "lent", errs),
        }
    }
}
