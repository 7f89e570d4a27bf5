//! Nodes and their inventory.

use uni_proto::v1 as pb;

use super::common::{amounts, timestamp_from_proto, timestamp_to_proto};
use super::{enum_value, list, opt, root_conversions, FromProto};
use crate::error::FieldErrors;
use crate::model::{
    AcceleratorDevice, CpuInfo, DeviceUsage, Inventory, MigMode, Node, NodeSpec, NodeStatus,
    NumaNode,
};

impl From<&Node> for pb::Node {
    fn from(n: &Node) -> Self {
        Self {
            meta: Some((&n.meta).into()),
            spec: Some((&n.spec).into()),
            status: Some((&n.status).into()),
        }
    }
}

impl FromProto<pb::Node> for Node {
    fn from_proto(p: &pb::Node, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            meta: opt(p.meta.as_ref(), path, "meta", errs),
            spec: opt(p.spec.as_ref(), path, "spec", errs),
            status: opt(p.status.as_ref(), path, "status", errs),
        }
    }
}

root_conversions!(Node, pb::Node);

impl From<&NodeSpec> for pb::NodeSpec {
    fn from(s: &NodeSpec) -> Self {
        Self {
            taints: s.taints.iter().map(Into::into).collect(),
            cordoned: s.cordoned,
        }
    }
}

impl FromProto<pb::NodeSpec> for NodeSpec {
    fn from_proto(p: &pb::NodeSpec, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            taints: list(&p.taints, path, "taints", errs),
            cordoned: p.cordoned,
        }
    }
}

impl From<&DeviceUsage> for pb::DeviceUsage {
    fn from(d: &DeviceUsage) -> Self {
        Self {
            index: d.index,
            allocated_milli: d.allocated_milli,
            allocated_memory_bytes: d.allocated_memory_bytes,
        }
    }
}

impl FromProto<pb::DeviceUsage> for DeviceUsage {
    fn from_proto(p: &pb::DeviceUsage, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            index: p.index,
            allocated_milli: p.allocated_milli,
            allocated_memory_bytes: p.allocated_memory_bytes,
        }
    }
}

impl From<&NodeStatus> for pb::NodeStatus {
    fn from(s: &NodeStatus) -> Self {
        Self {
            inventory: Some((&s.inventory).into()),
            capacity: amounts(&s.capacity),
            allocatable: amounts(&s.allocatable),
            allocated: amounts(&s.allocated),
            devices: s.devices.iter().map(Into::into).collect(),
            conditions: s.conditions.iter().map(Into::into).collect(),
            ready: s.ready,
            draining: s.draining,
            last_heartbeat: timestamp_to_proto(s.last_heartbeat),
            agent_version: s.agent_version.clone(),
            address: s.address.clone(),
            node_class: s.node_class.clone(),
            price_per_hour: s.price_per_hour,
            agent_endpoint: s.agent_endpoint.clone(),
            replicas: s.replicas,
        }
    }
}

impl FromProto<pb::NodeStatus> for NodeStatus {
    fn from_proto(p: &pb::NodeStatus, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            inventory: opt(p.inventory.as_ref(), path, "inventory", errs),
            capacity: opt(p.capacity.as_ref(), path, "capacity", errs),
            allocatable: opt(p.allocatable.as_ref(), path, "allocatable", errs),
            allocated: opt(p.allocated.as_ref(), path, "allocated", errs),
            devices: list(&p.devices, path, "devices", errs),
            conditions: list(&p.conditions, path, "conditions", errs),
            ready: p.ready,
            draining: p.draining,
            last_heartbeat: timestamp_from_proto(p.last_heartbeat.as_ref()),
            agent_version: p.agent_version.clone(),
            address: p.address.clone(),
            node_class: p.node_class.clone(),
            price_per_hour: p.price_per_hour,
            agent_endpoint: p.agent_endpoint.clone(),
            replicas: p.replicas,
        }
    }
}

impl From<&Inventory> for pb::NodeInventory {
    fn from(i: &Inventory) -> Self {
        Self {
            hostname: i.hostname.clone(),
            arch: i.arch.clone(),
            os: i.os.clone(),
            kernel_version: i.kernel_version.clone(),
            cpu: Some((&i.cpu).into()),
            memory_bytes: i.memory_bytes,
            numa_nodes: i.numa_nodes.iter().map(Into::into).collect(),
            accelerators: i.accelerators.iter().map(Into::into).collect(),
            driver_version: i.driver_version.clone(),
        }
    }
}

impl FromProto<pb::NodeInventory> for Inventory {
    fn from_proto(p: &pb::NodeInventory, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            hostname: p.hostname.clone(),
            arch: p.arch.clone(),
            os: p.os.clone(),
            kernel_version: p.kernel_version.clone(),
            cpu: opt(p.cpu.as_ref(), path, "cpu", errs),
            memory_bytes: p.memory_bytes,
            numa_nodes: list(&p.numa_nodes, path, "numa_nodes", errs),
            accelerators: list(&p.accelerators, path, "accelerators", errs),
            driver_version: p.driver_version.clone(),
        }
    }
}

impl From<&CpuInfo> for pb::CpuInfo {
    fn from(c: &CpuInfo) -> Self {
        Self {
            model: c.model.clone(),
            vendor: c.vendor.clone(),
            sockets: c.sockets,
            cores: c.cores,
            threads: c.threads,
            ucu_per_core: c.ucu_per_core,
        }
    }
}

impl FromProto<pb::CpuInfo> for CpuInfo {
    fn from_proto(p: &pb::CpuInfo, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            model: p.model.clone(),
            vendor: p.vendor.clone(),
            sockets: p.sockets,
            cores: p.cores,
            threads: p.threads,
            ucu_per_core: p.ucu_per_core,
        }
    }
}

impl From<&NumaNode> for pb::NumaNode {
    fn from(n: &NumaNode) -> Self {
        Self {
            id: n.id,
            cpus: n.cpus.clone(),
            memory_bytes: n.memory_bytes,
        }
    }
}

impl FromProto<pb::NumaNode> for NumaNode {
    fn from_proto(p: &pb::NumaNode, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            id: p.id,
            cpus: p.cpus.clone(),
            memory_bytes: p.memory_bytes,
        }
    }
}

impl From<&AcceleratorDevice> for pb::AcceleratorDevice {
    fn from(d: &AcceleratorDevice) -> Self {
        let mig_mode = match d.mig_mode {
            MigMode::Unknown => pb::MigMode::Unspecified,
            MigMode::Disabled => pb::MigMode::Disabled,
            MigMode::Enabled => pb::MigMode::Enabled,
        };
        Self {
            index: d.index,
            uuid: d.uuid.clone(),
            model: d.model.clone(),
            memory_bytes: d.memory_bytes,
            mig_mode: mig_mode.into(),
            nvlink_peers: d.nvlink_peers.clone(),
            numa_node: d.numa_node,
            pci_bus_id: d.pci_bus_id.clone(),
            bf16_tflops: d.bf16_tflops,
            healthy: d.healthy,
        }
    }
}

impl FromProto<pb::AcceleratorDevice> for AcceleratorDevice {
    fn from_proto(p: &pb::AcceleratorDevice, path: &str, errs: &mut FieldErrors) -> Self {
        let mig_mode = match enum_value(p.mig_mode, path, "mig_mode", errs) {
            Some(pb::MigMode::Disabled) => MigMode::Disabled,
            Some(pb::MigMode::Enabled) => MigMode::Enabled,
            _ => MigMode::Unknown,
        };
        Self {
            index: p.index,
            uuid: p.uuid.clone(),
            model: p.model.clone(),
            memory_bytes: p.memory_bytes,
            mig_mode,
            nvlink_peers: p.nvlink_peers.clone(),
            numa_node: p.numa_node,
            pci_bus_id: p.pci_bus_id.clone(),
            bf16_tflops: p.bf16_tflops,
            healthy: p.healthy,
        }
    }
}
