//! The cluster summary.

use uni_proto::v1 as pb;

use super::common::amounts;
use super::{list, opt, root_conversions, FromProto};
use crate::error::FieldErrors;
use crate::model::{
    ClusterSummary, DeviceModelSummary, NodeClassSummary, NodeCounts, WorkloadCounts,
};

impl From<&ClusterSummary> for pb::ClusterSummary {
    fn from(s: &ClusterSummary) -> Self {
        Self {
            capacity: amounts(&s.capacity),
            allocatable: amounts(&s.allocatable),
            allocated: amounts(&s.allocated),
            device_models: s.device_models.iter().map(Into::into).collect(),
            node_classes: s.node_classes.iter().map(Into::into).collect(),
            nodes: Some(pb::NodeCounts {
                total: s.nodes.total,
                ready: s.nodes.ready,
                not_ready: s.nodes.not_ready,
                cordoned: s.nodes.cordoned,
            }),
            workloads: Some(pb::WorkloadCounts {
                total: s.workloads.total,
                pending: s.workloads.pending,
                running: s.workloads.running,
                succeeded: s.workloads.succeeded,
                failed: s.workloads.failed,
            }),
            price_per_hour: s.price_per_hour,
            allocated_price_per_hour: s.allocated_price_per_hour,
            store_alarms: s.store_alarms.clone(),
            store_db_size_bytes: s.store_db_size_bytes,
        }
    }
}

impl FromProto<pb::ClusterSummary> for ClusterSummary {
    fn from_proto(p: &pb::ClusterSummary, path: &str, errs: &mut FieldErrors) -> Self {
        let nodes = p.nodes.map_or_else(NodeCounts::default, |n| NodeCounts {
            total: n.total,
            ready: n.ready,
            not_ready: n.not_ready,
            cordoned: n.cordoned,
        });
        let workloads = p
            .workloads
            .map_or_else(WorkloadCounts::default, |w| WorkloadCounts {
                total: w.total,
                pending: w.pending,
                running: w.running,
                succeeded: w.succeeded,
                failed: w.failed,
            });
        Self {
            capacity: opt(p.capacity.as_ref(), path, "capacity", errs),
            allocatable: opt(p.allocatable.as_ref(), path, "allocatable", errs),
            allocated: opt(p.allocated.as_ref(), path, "allocated", errs),
            device_models: list(&p.device_models, path, "device_models", errs),
            node_classes: list(&p.node_classes, path, "node_classes", errs),
            nodes,
            workloads,
            price_per_hour: p.price_per_hour,
            allocated_price_per_hour: p.allocated_price_per_hour,
            store_alarms: p.store_alarms.clone(),
            store_db_size_bytes: p.store_db_size_bytes,
        }
    }
}

root_conversions!(ClusterSummary, pb::ClusterSummary);

impl From<&DeviceModelSummary> for pb::DeviceModelSummary {
    fn from(d: &DeviceModelSummary) -> Self {
        Self {
            model: d.model.clone(),
            devices: d.devices,
            memory_bytes_per_device: d.memory_bytes_per_device,
            memory_bytes: d.memory_bytes,
            allocated_milli: d.allocated_milli,
            allocated_memory_bytes: d.allocated_memory_bytes,
            nodes: d.nodes,
            unhealthy: d.unhealthy,
        }
    }
}

impl FromProto<pb::DeviceModelSummary> for DeviceModelSummary {
    fn from_proto(p: &pb::DeviceModelSummary, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            model: p.model.clone(),
            devices: p.devices,
            memory_bytes_per_device: p.memory_bytes_per_device,
            memory_bytes: p.memory_bytes,
            allocated_milli: p.allocated_milli,
            allocated_memory_bytes: p.allocated_memory_bytes,
            nodes: p.nodes,
            unhealthy: p.unhealthy,
        }
    }
}

impl From<&NodeClassSummary> for pb::NodeClassSummary {
    fn from(c: &NodeClassSummary) -> Self {
        Self {
            node_class: c.node_class.clone(),
            nodes: c.nodes,
            allocatable: amounts(&c.allocatable),
            allocated: amounts(&c.allocated),
        }
    }
}

impl FromProto<pb::NodeClassSummary> for NodeClassSummary {
    fn from_proto(p: &pb::NodeClassSummary, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            node_class: p.node_class.clone(),
            nodes: p.nodes,
            allocatable: opt(p.allocatable.as_ref(), path, "allocatable", errs),
            allocated: opt(p.allocated.as_ref(), path, "allocated", errs),
        }
    }
}
