//! What the discovered hardware is worth, in universal units, through the hardware catalog.

use uni_core::catalog::Catalog;
use uni_core::model::{Inventory, ResourceAmounts};
use uni_core::units::{devices_to_milli, MILLI_PER_UCU};

/// Class of a node without accelerators (as the scheduler names it).
pub const CPU_CLASS: &str = "cpu";

/// Host resources kept back for the system and the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserve {
    pub compute_milli: u64,
    pub memory_bytes: u64,
}

/// A valued inventory: what goes into the node's status.
#[derive(Debug, Clone, PartialEq)]
pub struct Valued {
    pub inventory: Inventory,
    pub capacity: ResourceAmounts,
    pub allocatable: ResourceAmounts,
    pub node_class: String,
    pub price_per_hour: f64,
}

/// Fills in catalog figures (UCU per core; device model names, bf16 TFLOPS, memory where NVML
/// gave none) and computes capacity, allocatable capacity, class and hourly price.
pub fn value(mut inventory: Inventory, catalog: &Catalog, reserve: Reserve) -> Valued {
    let cpu_model = inventory.cpu.model.clone();
    inventory.cpu.ucu_per_core = catalog.ucu_per_core(&cpu_model);
    let compute_milli =
        catalog.milli_ucu(&cpu_model, u64::from(inventory.cpu.threads) * MILLI_PER_UCU);
    let mut device_usd = 0.0;
    for d in &mut inventory.accelerators {
        if let Some(model) = catalog.accelerator(&d.model) {
            d.model = model.name.clone();
            d.bf16_tflops = model.throughput.dense_tflops;
            if d.memory_bytes == 0 {
                d.memory_bytes = model.memory_bytes;
            }
            device_usd += model.usd_per_hour();
        }
    }
    let healthy: Vec<_> = inventory
        .accelerators
        .iter()
        .filter(|d| d.healthy)
        .collect();
    let capacity = ResourceAmounts {
        compute_milli,
        memory_bytes: inventory.memory_bytes,
        device_milli: devices_to_milli(u32::try_from(healthy.len()).unwrap_or(u32::MAX)),
        device_memory_bytes: healthy.iter().map(|d| d.memory_bytes).sum(),
    };
    let allocatable = ResourceAmounts {
        compute_milli: capacity.compute_milli.saturating_sub(reserve.compute_milli),
        memory_bytes: capacity.memory_bytes.saturating_sub(reserve.memory_bytes),
        ..capacity
    };
    let node_class = inventory
        .accelerators
        .first()
        .map_or_else(|| CPU_CLASS.to_string(), |d| d.model.clone());
    let price_per_hour = device_usd
        + catalog.compute_usd_per_hour(capacity.compute_milli)
        + catalog.memory_usd_per_hour(capacity.memory_bytes);
    Valued {
        inventory,
        capacity,
        allocatable,
        node_class,
        price_per_hour,
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{AcceleratorDevice, CpuInfo};
    use uni_core::units::GIB;

    use super::*;

    #[test]
    fn values_cpu_and_gpus_through_the_catalog() {
        let catalog = Catalog::builtin().unwrap();
        let inventory = Inventory {
            cpu: CpuInfo {
                model: "Some Unknown CPU".into(),
                threads: 8,
                cores: 4,
                sockets: 1,
                ..CpuInfo::default()
            },
            memory_bytes: 64 * GIB,
            accelerators: (0..2)
                .map(|i| AcceleratorDevice {
                    index: i,
                    model: "NVIDIA A100-SXM4-80GB".into(),
                    memory_bytes: 0,
                    healthy: true,
                    ..AcceleratorDevice::default()
                })
                .collect(),
            ..Inventory::default()
        };
        let v = value(
            inventory,
            &catalog,
            Reserve {
                compute_milli: 1000,
                memory_bytes: GIB,
            },
        );
        // The generic CPU is worth 1 UCU per logical CPU.
        assert_eq!(v.capacity.compute_milli, 8000);
        assert_eq!(v.allocatable.compute_milli, 7000);
        assert_eq!(v.allocatable.memory_bytes, 63 * GIB);
        assert_eq!(v.capacity.device_milli, 2000);
        assert_eq!(v.inventory.accelerators[0].model, "nvidia-a100-80gb");
        assert_eq!(v.capacity.device_memory_bytes, 160 * GIB);
        assert_eq!(v.node_class, "nvidia-a100-80gb");
        assert!(v.inventory.accelerators[0].bf16_tflops > 100.0);
        assert!(v.price_per_hour > 2.0);
    }

    #[test]
    fn a_cpu_node_is_of_the_cpu_class() {
        let catalog = Catalog::builtin().unwrap();
        let v = value(
            Inventory {
                cpu: CpuInfo {
                    threads: 2,
                    ..CpuInfo::default()
                },
                ..Inventory::default()
            },
            &catalog,
            Reserve::default(),
        );
        assert_eq!(v.node_class, CPU_CLASS);
        assert_eq!(v.capacity.device_milli, 0);
    }
}
