//! Hardware discovery: what this machine has, read from `/proc`, `/sys` and NVML.
//!
//! Every reader takes a root directory (normally `/`) so tests can point it at a fake tree.

mod cpu;
mod host;
mod memory;
mod numa;
pub mod nvml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::{info, warn};
use uni_core::model::Inventory;

use crate::error::Result;

pub use cpu::parse_cpuinfo;
pub use memory::parse_meminfo_total;
pub use numa::parse_cpulist;

/// Where NVML comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NvmlSource {
    /// `libnvidia-ml.so.1` from the dynamic loader's search path, if present.
    #[default]
    Auto,
    /// This library file (a driver in a non-standard place, or a test double).
    Library(PathBuf),
    /// Do not look for accelerators.
    Off,
}

#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Root of `/proc` and `/sys`; `/` except in tests.
    pub root: PathBuf,
    pub nvml: NvmlSource,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            nvml: NvmlSource::Auto,
        }
    }
}

/// What discovery found: the inventory, and the device node of each accelerator (by index)
/// where the driver says which it is.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub inventory: Inventory,
    pub device_paths: BTreeMap<u32, PathBuf>,
}

/// Discovers CPU, memory, NUMA layout and accelerators. A machine without an NVIDIA driver
/// reports no accelerators; a driver that fails is logged and also reports none.
pub fn discover(config: &DiscoveryConfig) -> Result<Inventory> {
    discover_with_devices(config).map(|d| d.inventory)
}

/// [`discover`], with the accelerators' device nodes.
pub fn discover_with_devices(config: &DiscoveryConfig) -> Result<Discovered> {
    let root = config.root.as_path();
    let cpu = cpu::discover(root)?;
    let memory_bytes = memory::discover(root)?;
    let numa_nodes = numa::discover(root);
    let host = host::discover(root);
    let mut inventory = Inventory {
        hostname: host.hostname,
        arch: std::env::consts::ARCH.to_string(),
        os: host.os,
        kernel_version: host.kernel,
        cpu,
        memory_bytes,
        numa_nodes,
        accelerators: Vec::new(),
        driver_version: String::new(),
    };
    let mut device_paths = BTreeMap::new();
    let library = match &config.nvml {
        NvmlSource::Off => None,
        NvmlSource::Auto => Some(None),
        NvmlSource::Library(p) => Some(Some(p.as_path())),
    };
    if let Some(library) = library {
        match nvml::discover(library, root) {
            Ok(Some(gpus)) => {
                info!(
                    devices = gpus.devices.len(),
                    driver = %gpus.driver_version,
                    "NVML: accelerators discovered"
                );
                device_paths = gpus
                    .devices
                    .iter()
                    .map(|d| d.index)
                    .zip(gpus.device_paths)
                    .collect();
                inventory.accelerators = gpus.devices;
                inventory.driver_version = gpus.driver_version;
            }
            Ok(None) => info!("no NVIDIA driver (NVML not found): reporting no accelerators"),
            Err(e) => warn!(error = %e, "NVML failed: reporting no accelerators"),
        }
    }
    Ok(Discovered {
        inventory,
        device_paths,
    })
}

/// Reads a file under `root`, `path` being absolute (`/proc/cpuinfo`).
pub(crate) fn read(root: &Path, path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(under(root, path))
}

pub(crate) fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}
