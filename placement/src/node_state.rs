//! A node as the placement engine sees it: capacity, usage derived from allocations, devices.

use std::collections::{BTreeMap, HashMap};

use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::model::{AcceleratorDevice, Allocation, Node, Taint};
use uni_core::units::MILLI_PER_DEVICE;

/// Node class of nodes without accelerators, when the node does not name one.
pub const CPU_CLASS: &str = "cpu";

/// One accelerator device and how much of it is allocated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    /// As `CUDA_VISIBLE_DEVICES` counts.
    pub index: u32,
    pub uuid: String,
    /// Catalog canonical name, or the raw name when the catalog does not know it.
    pub model: String,
    /// The name the agent discovered (NVML name, trace code).
    pub raw_model: String,
    pub memory_bytes: u64,
    pub bf16_tflops: f64,
    pub price_per_hour: f64,
    /// NVLink island: the connected component of `nvlink_peers`, named by its lowest index;
    /// a device without peers is an island of its own.
    pub island: u32,
    pub healthy: bool,
    pub used_milli: u32,
    pub used_memory_bytes: u64,
}

impl DeviceState {
    /// A healthy, unallocated device that is its own island (tests, trace replay).
    pub fn new(
        index: u32,
        model: &str,
        memory_bytes: u64,
        bf16_tflops: f64,
        price_per_hour: f64,
    ) -> Self {
        Self {
            index,
            uuid: format!("dev-{index}"),
            model: model.to_string(),
            raw_model: model.to_string(),
            memory_bytes,
            bf16_tflops,
            price_per_hour,
            island: index,
            healthy: true,
            used_milli: 0,
            used_memory_bytes: 0,
        }
    }

    /// Thousandths of the device not yet allocated; 0 when unhealthy.
    pub fn free_milli(&self) -> u32 {
        if self.healthy {
            MILLI_PER_DEVICE.saturating_sub(self.used_milli)
        } else {
            0
        }
    }

    pub fn free_memory_bytes(&self) -> u64 {
        self.memory_bytes.saturating_sub(self.used_memory_bytes)
    }

    /// Healthy and nothing allocated on it: may be bound whole.
    pub fn is_whole_free(&self) -> bool {
        self.healthy && self.used_milli == 0 && self.used_memory_bytes == 0
    }
}

/// One node: what it offers, what is allocated on it, and where it may be used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub class: String,
    pub ready: bool,
    pub cordoned: bool,
    pub draining: bool,
    /// Allocatable compute, milli-UCU.
    pub compute_milli: u64,
    /// Allocatable host memory.
    pub memory_bytes: u64,
    pub used_compute_milli: u64,
    pub used_memory_bytes: u64,
    pub devices: Vec<DeviceState>,
    pub usd_per_ucu_hour: f64,
    pub usd_per_gib_hour: f64,
    /// Replicas of each workload allocated here (for spreading). Derived from allocations.
    pub replicas: HashMap<WorkloadRef, u32>,
}

impl NodeState {
    /// A ready CPU node without devices or prices (tests, trace replay); add devices and
    /// prices to taste.
    pub fn new(name: &str, compute_milli: u64, memory_bytes: u64) -> Self {
        Self {
            name: name.to_string(),
            class: CPU_CLASS.to_string(),
            ready: true,
            compute_milli,
            memory_bytes,
            ..Self::default()
        }
    }

    /// The node as the agent reported it, valued with `catalog`. Usage starts at zero: the
    /// snapshot derives it from allocations.
    pub fn from_node(node: &Node, catalog: &Catalog) -> NodeState {
        let status = &node.status;
        let accelerators = &status.inventory.accelerators;
        let islands = islands(accelerators);
        // An unknown model is priced at the node's share of its catalog price, if any.
        let fallback_price = if accelerators.is_empty() {
            0.0
        } else {
            status.price_per_hour / accelerators.len() as f64
        };
        let devices: Vec<DeviceState> = accelerators
            .iter()
            .zip(islands)
            .map(|(d, island)| device_state(d, island, catalog, fallback_price))
            .collect();
        let class = if !status.node_class.is_empty() {
            status.node_class.clone()
        } else if let Some(first) = devices.first() {
            first.model.clone()
        } else {
            CPU_CLASS.to_string()
        };
        let pricing = catalog.cpu_pricing();
        NodeState {
            name: node.meta.name.clone(),
            labels: node.meta.labels.clone(),
            taints: node.spec.taints.clone(),
            class,
            ready: status.ready,
            cordoned: node.spec.cordoned,
            draining: status.draining,
            compute_milli: status.allocatable.compute_milli,
            memory_bytes: status.allocatable.memory_bytes,
            used_compute_milli: 0,
            used_memory_bytes: 0,
            devices,
            usd_per_ucu_hour: pricing.usd_per_ucu_hour,
            usd_per_gib_hour: pricing.usd_per_gib_hour,
            replicas: HashMap::new(),
        }
    }

    /// May receive new placements.
    pub fn schedulable(&self) -> bool {
        self.ready && !self.cordoned && !self.draining
    }

    pub fn free_compute_milli(&self) -> u64 {
        self.compute_milli.saturating_sub(self.used_compute_milli)
    }

    pub fn free_memory_bytes(&self) -> u64 {
        self.memory_bytes.saturating_sub(self.used_memory_bytes)
    }

    /// Devices that are healthy and entirely unallocated.
    pub fn whole_free_devices(&self) -> u32 {
        self.devices.iter().filter(|d| d.is_whole_free()).count() as u32
    }

    /// The largest free share of any healthy device.
    pub fn max_free_milli(&self) -> u32 {
        self.devices
            .iter()
            .map(DeviceState::free_milli)
            .max()
            .unwrap_or(0)
    }

    /// Free thousandths over all healthy devices.
    pub fn free_device_milli(&self) -> u64 {
        self.devices.iter().map(|d| u64::from(d.free_milli())).sum()
    }

    /// Thousandths over all healthy devices.
    pub fn healthy_device_milli(&self) -> u64 {
        self.devices
            .iter()
            .filter(|d| d.healthy)
            .map(|_| u64::from(MILLI_PER_DEVICE))
            .sum()
    }

    /// Adds (`add`) or removes what `alloc` takes. Saturating, so removing what was
    /// added is exact and a stale allocation cannot underflow.
    pub(crate) fn apply(&mut self, alloc: &Allocation, add: bool) {
        let op = |a: u64, b: u64| {
            if add {
                a.saturating_add(b)
            } else {
                a.saturating_sub(b)
            }
        };
        self.used_compute_milli = op(self.used_compute_milli, alloc.compute_milli);
        self.used_memory_bytes = op(self.used_memory_bytes, alloc.memory_bytes);
        for binding in &alloc.devices {
            if let Some(d) = self.devices.iter_mut().find(|d| d.index == binding.index) {
                let milli = op(u64::from(d.used_milli), u64::from(binding.share_milli));
                d.used_milli = u32::try_from(milli).unwrap_or(u32::MAX);
                d.used_memory_bytes = op(d.used_memory_bytes, binding.memory_bytes);
            }
        }
        let key = WorkloadRef::of(alloc);
        if add {
            *self.replicas.entry(key).or_insert(0) += 1;
        } else if let Some(count) = self.replicas.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.replicas.remove(&key);
            }
        }
    }

    /// Forgets all usage (before it is derived again from allocations).
    pub(crate) fn clear_usage(&mut self) {
        self.used_compute_milli = 0;
        self.used_memory_bytes = 0;
        self.replicas.clear();
        for d in &mut self.devices {
            d.used_milli = 0;
            d.used_memory_bytes = 0;
        }
    }
}

fn device_state(
    d: &AcceleratorDevice,
    island: u32,
    catalog: &Catalog,
    fallback_price: f64,
) -> DeviceState {
    let known = catalog.accelerator(&d.model);
    let (model, price, tflops, memory) = match known {
        Some(m) => (
            m.name.clone(),
            m.usd_per_hour(),
            m.throughput.dense_tflops,
            m.memory_bytes,
        ),
        None => (d.model.clone(), fallback_price, 0.0, 0),
    };
    DeviceState {
        index: d.index,
        uuid: d.uuid.clone(),
        model,
        raw_model: d.model.clone(),
        // The agent's own reading wins over the catalog's nominal figures.
        memory_bytes: if d.memory_bytes > 0 {
            d.memory_bytes
        } else {
            memory
        },
        bf16_tflops: if d.bf16_tflops > 0.0 {
            d.bf16_tflops
        } else {
            tflops
        },
        price_per_hour: price,
        island,
        healthy: d.healthy,
        used_milli: 0,
        used_memory_bytes: 0,
    }
}

/// The NVLink island of each device: the lowest device index in its connected component of
/// `nvlink_peers` (peers naming unknown indexes are ignored).
fn islands(devices: &[AcceleratorDevice]) -> Vec<u32> {
    let position: HashMap<u32, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.index, i))
        .collect();
    let mut parent: Vec<usize> = (0..devices.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, d) in devices.iter().enumerate() {
        for peer in &d.nvlink_peers {
            if let Some(&j) = position.get(peer) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut lowest: HashMap<usize, u32> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let r = root(&mut parent, i);
        let entry = lowest.entry(r).or_insert(d.index);
        *entry = (*entry).min(d.index);
    }
    (0..devices.len())
        .map(|i| {
            let r = root(&mut parent, i);
            lowest.get(&r).copied().unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uni_core::model::{NodeStatus, ObjectMeta, ResourceAmounts};
    use uni_core::units::GIB;

    use super::*;

    fn gpu(index: u32, model: &str, peers: &[u32]) -> AcceleratorDevice {
        AcceleratorDevice {
            index,
            uuid: format!("GPU-{index}"),
            model: model.into(),
            nvlink_peers: peers.to_vec(),
            healthy: true,
            ..AcceleratorDevice::default()
        }
    }

    #[test]
    fn islands_are_connected_components() {
        let devices = [
            gpu(0, "x", &[1]),
            gpu(1, "x", &[0]),
            gpu(2, "x", &[]),
            gpu(3, "x", &[4]),
            gpu(4, "x", &[5]),
            gpu(5, "x", &[9]),
        ];
        assert_eq!(islands(&devices), vec![0, 0, 2, 3, 3, 3]);
    }

    #[test]
    fn from_node_values_devices_with_the_catalog() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut node = Node {
            meta: ObjectMeta::cluster("n1"),
            status: NodeStatus {
                ready: true,
                allocatable: ResourceAmounts {
                    compute_milli: 96_000,
                    memory_bytes: 512 * GIB,
                    ..ResourceAmounts::ZERO
                },
                price_per_hour: 8.0,
                ..NodeStatus::default()
            },
            ..Node::default()
        };
        node.status.inventory.accelerators = vec![
            gpu(0, "NVIDIA A100-SXM4-80GB", &[1]),
            gpu(1, "NVIDIA A100-SXM4-80GB", &[0]),
            gpu(2, "Mystery 9000", &[]),
        ];
        let state = NodeState::from_node(&node, &catalog);
        assert_eq!(state.name, "n1");
        assert_eq!(state.class, "nvidia-a100-80gb");
        assert_eq!(state.compute_milli, 96_000);
        let a100 = &state.devices[0];
        assert_eq!(a100.model, "nvidia-a100-80gb");
        assert_eq!(a100.raw_model, "NVIDIA A100-SXM4-80GB");
        assert_eq!(a100.memory_bytes, 80 * GIB);
        assert_eq!(a100.bf16_tflops, 312.0);
        assert!((a100.price_per_hour - 2.5109).abs() < 1e-9);
        assert_eq!(state.devices[1].island, 0);
        let unknown = &state.devices[2];
        assert_eq!(unknown.model, "Mystery 9000");
        assert!((unknown.price_per_hour - 8.0 / 3.0).abs() < 1e-9);
        assert_eq!(unknown.island, 2);
        assert!(state.usd_per_ucu_hour > 0.0 && state.usd_per_gib_hour > 0.0);

        node.status.inventory.accelerators.clear();
        node.status.node_class = String::new();
        assert_eq!(NodeState::from_node(&node, &catalog).class, CPU_CLASS);
    }
}
