//! The catalog's domain types: what a CPU or accelerator model is worth and what it costs.
//!
//! Units: memory in bytes (`u64`), compute in milli-UCU (`u64`), prices in USD per hour (`f64`).

use serde::Deserialize;

/// Bytes in one GiB.
pub const GIB: u64 = 1 << 30;

/// What 1 UCU is: the reference CPU and where its definition comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct UcuReference {
    /// Canonical name of the reference [`CpuModel`] (its factor is exactly 1.0).
    pub cpu: String,
    pub definition: String,
    pub source: String,
}

/// The price of CPU-only capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuPricing {
    /// USD per UCU-hour (one reference logical CPU for one hour).
    pub usd_per_ucu_hour: f64,
    /// USD per GiB-hour of host memory.
    pub usd_per_gib_hour: f64,
    pub source: String,
}

impl CpuPricing {
    /// Hourly price of `milli_ucu` of compute.
    pub fn compute_usd_per_hour(&self, milli_ucu: u64) -> f64 {
        milli_ucu as f64 / 1000.0 * self.usd_per_ucu_hour
    }

    /// Hourly price of `bytes` of host memory.
    pub fn memory_usd_per_hour(&self, bytes: u64) -> f64 {
        bytes as f64 / GIB as f64 * self.usd_per_gib_hour
    }
}

/// A CPU model and its throughput per logical CPU, in UCU.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuModel {
    /// Canonical name, a slug (`amd-epyc-7r13`).
    pub name: String,
    pub display_name: String,
    /// Exact names this model is known by (as written in the catalog).
    pub aliases: Vec<String>,
    /// Glob patterns over normalized names (as written in the catalog).
    pub patterns: Vec<String>,
    /// UCU per logical CPU (hardware thread as the OS schedules it).
    pub ucu_per_core: f64,
    /// [`Self::ucu_per_core`] in milli-UCU, rounded; at least 1.
    pub milli_ucu_per_core: u64,
    /// Whether this is the fallback for unknown models.
    pub generic: bool,
    pub source: String,
    pub notes: Option<String>,
}

impl CpuModel {
    /// Compute capacity, in milli-UCU, of `milli_cpus` thousandths of a logical CPU of this model
    /// (a node with 96 logical CPUs has `milli_cpus = 96_000`). Saturates at `u64::MAX`.
    pub fn milli_ucu(&self, milli_cpus: u64) -> u64 {
        let product = u128::from(milli_cpus) * u128::from(self.milli_ucu_per_core) / 1000;
        u64::try_from(product).unwrap_or(u64::MAX)
    }
}

/// The number format a throughput figure is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TflopsDtype {
    /// bfloat16 tensor throughput.
    Bf16,
    /// float16 tensor (or, without tensor cores, vector) throughput; used for parts without bf16.
    Fp16,
}

/// Dense (no structured sparsity) tensor throughput of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    pub dense_tflops: f64,
    pub dtype: TflopsDtype,
    pub source: String,
}

/// How devices of a model talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterconnectKind {
    /// Only through the PCIe host link.
    Pcie,
    /// NVLink between all devices of a node (NVSwitch or a board mesh).
    Nvlink,
    /// NVLink bridges between pairs of cards; otherwise PCIe.
    NvlinkBridge,
}

impl InterconnectKind {
    /// Whether devices can exchange data faster than over PCIe (NVLink of either kind).
    pub fn is_fast(self) -> bool {
        !matches!(self, InterconnectKind::Pcie)
    }
}

/// A device's interconnect: kind, generation (NVLink or PCIe) and bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct Interconnect {
    pub kind: InterconnectKind,
    pub generation: u32,
    /// GB/s per device, both directions together.
    pub bandwidth_gb_per_s: f64,
}

/// The cloud instance a device price was derived from.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePrice {
    pub instance: String,
    pub region: String,
    /// Price of the whole instance, USD per hour.
    pub usd_per_hour: f64,
    pub devices: u32,
    pub vcpus: u32,
    pub memory_gib: u32,
}

impl InstancePrice {
    /// The device-only price this instance implies when its host vCPUs and memory are valued at
    /// `cpu` (per vCPU, not per UCU): `(instance - vcpus x cpu - memory x mem) / devices`.
    pub fn device_usd_per_hour(&self, cpu: &CpuPricing) -> f64 {
        let host = f64::from(self.vcpus) * cpu.usd_per_ucu_hour
            + f64::from(self.memory_gib) * cpu.usd_per_gib_hour;
        (self.usd_per_hour - host) / f64::from(self.devices.max(1))
    }
}

/// The hourly price of one device, without its host.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub usd_per_hour: f64,
    pub source: String,
    pub derived_from: Option<InstancePrice>,
}

/// An accelerator model: capability and price of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceleratorModel {
    /// Canonical name, a slug (`nvidia-a100-80gb`).
    pub name: String,
    pub display_name: String,
    pub vendor: String,
    /// Exact names this model is known by: NVML names, trace codes (as written in the catalog).
    pub aliases: Vec<String>,
    /// Glob patterns over normalized names (as written in the catalog).
    pub patterns: Vec<String>,
    /// Device memory, bytes.
    pub memory_bytes: u64,
    pub throughput: Throughput,
    pub interconnect: Interconnect,
    pub price: Price,
    /// True when the figures are assumptions for an undisclosed model, not published facts.
    pub assumed: bool,
    pub notes: Option<String>,
}

impl AcceleratorModel {
    /// Hourly price of one whole device.
    pub fn usd_per_hour(&self) -> f64 {
        self.price.usd_per_hour
    }

    /// Hourly price of `milli_devices` thousandths of a device (a shared device, or several).
    pub fn usd_per_hour_for_milli(&self, milli_devices: u64) -> f64 {
        milli_devices as f64 / 1000.0 * self.price.usd_per_hour
    }
}
