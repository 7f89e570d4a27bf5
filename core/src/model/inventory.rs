//! The hardware of a node as its agent discovered it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Inventory {
    pub hostname: String,
    pub arch: String,
    pub os: String,
    pub kernel_version: String,
    pub cpu: CpuInfo,
    pub memory_bytes: u64,
    pub numa_nodes: Vec<NumaNode>,
    pub accelerators: Vec<AcceleratorDevice>,
    pub driver_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuInfo {
    pub model: String,
    pub vendor: String,
    pub sockets: u32,
    /// Physical cores over all sockets.
    pub cores: u32,
    /// Logical CPUs.
    pub threads: u32,
    /// UCU one core is worth, from the hardware catalog.
    pub ucu_per_core: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumaNode {
    pub id: u32,
    pub cpus: Vec<u32>,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigMode {
    /// Unknown or unsupported.
    #[default]
    Unknown,
    Disabled,
    Enabled,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcceleratorDevice {
    /// As `CUDA_VISIBLE_DEVICES` counts.
    pub index: u32,
    pub uuid: String,
    /// As the hardware catalog names it.
    pub model: String,
    pub memory_bytes: u64,
    pub mig_mode: MigMode,
    /// Indexes of devices joined to this one by NVLink.
    pub nvlink_peers: Vec<u32>,
    pub numa_node: Option<u32>,
    pub pci_bus_id: String,
    /// Dense bf16 TFLOPS, from the hardware catalog.
    pub bf16_tflops: f64,
    pub healthy: bool,
}
