//! The fleet as one "universal instance": totals and health at a glance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::node::Node;
use super::resources::ResourceAmounts;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceModelSummary {
    pub model: String,
    /// Healthy devices.
    pub devices: u32,
    pub memory_bytes_per_device: u64,
    pub memory_bytes: u64,
    pub allocated_milli: u64,
    pub allocated_memory_bytes: u64,
    pub nodes: u32,
    pub unhealthy: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeClassSummary {
    pub node_class: String,
    pub nodes: u32,
    pub allocatable: ResourceAmounts,
    pub allocated: ResourceAmounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeCounts {
    pub total: u32,
    pub ready: u32,
    pub not_ready: u32,
    pub cordoned: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadCounts {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSummary {
    /// Summed over ready nodes.
    pub capacity: ResourceAmounts,
    pub allocatable: ResourceAmounts,
    pub allocated: ResourceAmounts,
    /// Sorted by model.
    pub device_models: Vec<DeviceModelSummary>,
    /// Sorted by class.
    pub node_classes: Vec<NodeClassSummary>,
    pub nodes: NodeCounts,
    pub workloads: WorkloadCounts,
    /// USD per hour of ready nodes.
    pub price_per_hour: f64,
    /// The part of `price_per_hour` that allocations use.
    pub allocated_price_per_hour: f64,
    /// Alarms the store raised (`NOSPACE`), sorted.
    pub store_alarms: Vec<String>,
    pub store_db_size_bytes: u64,
}

impl ClusterSummary {
    /// Resource totals, device models, node classes and node counts of `nodes`. Resources count
    /// only ready nodes; `workloads` and `allocated_price_per_hour` are left for the caller.
    pub fn from_nodes<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Self {
        let mut summary = Self::default();
        let mut models: BTreeMap<String, DeviceModelSummary> = BTreeMap::new();
        let mut classes: BTreeMap<String, NodeClassSummary> = BTreeMap::new();
        for node in nodes {
            let counts = &mut summary.nodes;
            counts.total += 1;
            if node.spec.cordoned {
                counts.cordoned += 1;
            }
            if !node.status.ready {
                counts.not_ready += 1;
                continue;
            }
            counts.ready += 1;
            let status = &node.status;
            summary.capacity += status.capacity;
            summary.allocatable += status.allocatable;
            summary.allocated += status.allocated;
            summary.price_per_hour += status.price_per_hour;

            let class =
                classes
                    .entry(status.node_class.clone())
                    .or_insert_with(|| NodeClassSummary {
                        node_class: status.node_class.clone(),
                        ..NodeClassSummary::default()
                    });
            class.nodes += 1;
            class.allocatable += status.allocatable;
            class.allocated += status.allocated;

            let mut seen_here = Vec::new();
            for dev in &status.inventory.accelerators {
                let m = models
                    .entry(dev.model.clone())
                    .or_insert_with(|| DeviceModelSummary {
                        model: dev.model.clone(),
                        memory_bytes_per_device: dev.memory_bytes,
                        ..DeviceModelSummary::default()
                    });
                if !seen_here.contains(&dev.model) {
                    seen_here.push(dev.model.clone());
                    m.nodes += 1;
                }
                if !dev.healthy {
                    m.unhealthy += 1;
                    continue;
                }
                m.devices += 1;
                m.memory_bytes = m.memory_bytes.saturating_add(dev.memory_bytes);
                if let Some(usage) = status.devices.iter().find(|u| u.index == dev.index) {
                    m.allocated_milli += u64::from(usage.allocated_milli);
                    m.allocated_memory_bytes = m
                        .allocated_memory_bytes
                        .saturating_add(usage.allocated_memory_bytes);
                }
            }
        }
        summary.device_models = models.into_values().collect();
        summary.node_classes = classes.into_values().collect();
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::AcceleratorDevice;
    use crate::model::node::DeviceUsage;

    fn gpu(index: u32, healthy: bool) -> AcceleratorDevice {
        AcceleratorDevice {
            index,
            model: "H100".into(),
            memory_bytes: 80,
            healthy,
            ..AcceleratorDevice::default()
        }
    }

    #[test]
    fn sums_ready_nodes_by_model_and_class() {
        let mut a = Node::default();
        a.status.ready = true;
        a.status.node_class = "gpu".into();
        a.status.allocatable = ResourceAmounts::devices(2, 80);
        a.status.inventory.accelerators = vec![gpu(0, true), gpu(1, true), gpu(2, false)];
        a.status.devices = vec![DeviceUsage {
            index: 1,
            allocated_milli: 500,
            allocated_memory_bytes: 40,
        }];
        let mut b = Node::default();
        b.spec.cordoned = true;
        b.status.inventory.accelerators = vec![gpu(0, true)];

        let s = ClusterSummary::from_nodes([&a, &b]);
        assert_eq!(
            s.nodes,
            NodeCounts {
                total: 2,
                ready: 1,
                not_ready: 1,
                cordoned: 1
            }
        );
        assert_eq!(s.allocatable.device_milli, 2000);
        let h100 = &s.device_models[0];
        assert_eq!(
            (
                h100.devices,
                h100.unhealthy,
                h100.nodes,
                h100.allocated_milli
            ),
            (2, 1, 1, 500)
        );
        assert_eq!(h100.memory_bytes, 160);
        assert_eq!(s.node_classes[0].nodes, 1);
    }
}
