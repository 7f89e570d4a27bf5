//! What a replica asks for, in universal units, and amounts of resources as the system counts
//! them.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::quantity;
use crate::units::devices_to_milli;

/// What one replica (or training worker) needs. Written as quantities (`compute: "500m"`,
/// `memory: "64Gi"`), held as integers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// Thousandths of a universal compute unit.
    #[serde(rename = "compute", with = "quantity::as_milli")]
    pub compute_milli: u64,
    #[serde(rename = "memory", with = "quantity::as_bytes")]
    pub memory_bytes: u64,
    /// `None` for CPU-only work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorRequest>,
}

/// Which devices of a replica (or a job's workers) must share a fast interconnect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interconnect {
    /// PCIe is enough.
    #[default]
    Any,
    /// Training: every worker on one node. One replica is always on one node.
    SameNode,
    /// A replica's devices form one NVLink island.
    #[serde(rename = "nvlink")]
    NvLink,
}

/// What the work needs from accelerators, by capability rather than by model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcceleratorRequest {
    /// Device memory in total, divided evenly over the devices the replica gets.
    #[serde(rename = "memory", with = "quantity::as_bytes")]
    pub memory_bytes: u64,
    /// Dense bf16 TFLOPS in total over the replica's devices; 0 = no requirement.
    pub bf16_tflops: f64,
    pub min_devices: u32,
    pub max_devices: u32,
    /// May take a fraction of one device.
    pub shareable: bool,
    pub interconnect: Interconnect,
    /// Catalog model names; empty = any.
    pub allowed_models: Vec<String>,
    pub forbidden_models: Vec<String>,
}

impl Default for AcceleratorRequest {
    fn default() -> Self {
        Self {
            memory_bytes: 0,
            bf16_tflops: 0.0,
            min_devices: 1,
            max_devices: 1,
            shareable: false,
            interconnect: Interconnect::Any,
            allowed_models: Vec::new(),
            forbidden_models: Vec::new(),
        }
    }
}

impl AcceleratorRequest {
    /// Device memory each device must provide when the replica runs on `devices` devices.
    pub fn memory_per_device(&self, devices: u32) -> u64 {
        self.memory_bytes.div_ceil(u64::from(devices.max(1)))
    }

    /// TFLOPS each device must provide when the replica runs on `devices` devices.
    pub fn tflops_per_device(&self, devices: u32) -> f64 {
        self.bf16_tflops / f64::from(devices.max(1))
    }

    /// Whether `model` passes the allowed and forbidden lists.
    pub fn allows_model(&self, model: &str) -> bool {
        (self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model))
            && !self.forbidden_models.iter().any(|m| m == model)
    }
}

/// Amounts of every universal resource, as the system counts them (capacity, allocation,
/// usage). Integer so that sums are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceAmounts {
    pub compute_milli: u64,
    pub memory_bytes: u64,
    /// Devices in thousandths; shares add up.
    pub device_milli: u64,
    pub device_memory_bytes: u64,
}

impl ResourceAmounts {
    pub const ZERO: Self = Self {
        compute_milli: 0,
        memory_bytes: 0,
        device_milli: 0,
        device_memory_bytes: 0,
    };

    /// Whole devices with their memory.
    pub fn devices(count: u32, memory_bytes_each: u64) -> Self {
        Self {
            device_milli: devices_to_milli(count),
            device_memory_bytes: u64::from(count).saturating_mul(memory_bytes_each),
            ..Self::ZERO
        }
    }

    /// Every amount of `self` is at most the one of `other`.
    pub fn fits_in(&self, other: &Self) -> bool {
        self.compute_milli <= other.compute_milli
            && self.memory_bytes <= other.memory_bytes
            && self.device_milli <= other.device_milli
            && self.device_memory_bytes <= other.device_memory_bytes
    }

    pub fn saturating_add(&self, other: &Self) -> Self {
        Self {
            compute_milli: self.compute_milli.saturating_add(other.compute_milli),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            device_milli: self.device_milli.saturating_add(other.device_milli),
            device_memory_bytes: self
                .device_memory_bytes
                .saturating_add(other.device_memory_bytes),
        }
    }

    /// `self - other`, each amount floored at zero.
    pub fn saturating_sub(&self, other: &Self) -> Self {
        Self {
            compute_milli: self.compute_milli.saturating_sub(other.compute_milli),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            device_milli: self.device_milli.saturating_sub(other.device_milli),
            device_memory_bytes: self
                .device_memory_bytes
                .saturating_sub(other.device_memory_bytes),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Names of the amounts, in [`ResourceAmounts::to_array`] order.
    pub const NAMES: [&'static str; 4] = ["compute", "memory", "devices", "device_memory"];

    /// The amounts as an array: compute, memory, devices, device memory.
    pub fn to_array(&self) -> [u64; 4] {
        [
            self.compute_milli,
            self.memory_bytes,
            self.device_milli,
            self.device_memory_bytes,
        ]
    }

    pub fn from_array(a: [u64; 4]) -> Self {
        Self {
            compute_milli: a[0],
            memory_bytes: a[1],
            device_milli: a[2],
            device_memory_bytes: a[3],
        }
    }

    /// Each amount the smaller of the two.
    pub fn min_each(&self, other: &Self) -> Self {
        let (a, b) = (self.to_array(), other.to_array());
        Self::from_array(std::array::from_fn(|i| a[i].min(b[i])))
    }

    /// Each amount the larger of the two.
    pub fn max_each(&self, other: &Self) -> Self {
        let (a, b) = (self.to_array(), other.to_array());
        Self::from_array(std::array::from_fn(|i| a[i].max(b[i])))
    }
}

impl Add for ResourceAmounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        self.saturating_add(&other)
    }
}

impl AddAssign for ResourceAmounts {
    fn add_assign(&mut self, other: Self) {
        *self = self.saturating_add(&other);
    }
}

impl std::iter::Sum for ResourceAmounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_device_shares_round_up() {
        let a = AcceleratorRequest {
            memory_bytes: 81,
            bf16_tflops: 600.0,
            ..AcceleratorRequest::default()
        };
        assert_eq!(a.memory_per_device(2), 41);
        assert_eq!(a.memory_per_device(0), 81);
        assert_eq!(a.tflops_per_device(3), 200.0);
    }

    #[test]
    fn model_lists() {
        let a = AcceleratorRequest {
            allowed_models: vec!["A".into(), "B".into()],
            forbidden_models: vec!["B".into()],
            ..AcceleratorRequest::default()
        };
        assert!(a.allows_model("A"));
        assert!(!a.allows_model("B"));
        assert!(!a.allows_model("C"));
        assert!(AcceleratorRequest::default().allows_model("C"));
    }

    #[test]
    fn amounts_arithmetic() {
        let a = ResourceAmounts {
            compute_milli: 1000,
            memory_bytes: 10,
            ..ResourceAmounts::ZERO
        };
        let b = ResourceAmounts::devices(2, 40);
        let sum = a + b;
        assert_eq!(sum.device_milli, 2000);
        assert_eq!(sum.device_memory_bytes, 80);
        assert!(a.fits_in(&sum));
        assert!(!sum.fits_in(&a));
        assert_eq!(sum.saturating_sub(&b), a);
        assert_eq!([a, b].into_iter().sum::<ResourceAmounts>(), sum);
        assert!(ResourceAmounts::ZERO.is_zero());
    }

    #[test]
    fn resources_read_quantities_from_yaml() {
        let r: Resources = serde_yaml::from_str(
            "compute: 500m\nmemory: 64Gi\naccelerator:\n  memory: 80Gi\n  max_devices: 2\n",
        )
        .expect("parse");
        assert_eq!(r.compute_milli, 500);
        assert_eq!(r.memory_bytes, 64 << 30);
        let acc = r.accelerator.as_ref().expect("accelerator");
        assert_eq!((acc.min_devices, acc.max_devices), (1, 2));
        let plain: Resources = serde_yaml::from_str("compute: 2\nmemory: 1024").expect("parse");
        assert_eq!((plain.compute_milli, plain.memory_bytes), (2000, 1024));
        assert!(serde_yaml::from_str::<Resources>("compute: 12Qi").is_err());
        assert!(serde_yaml::from_str::<Resources>("cpu: 1").is_err());
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains(r#""compute":"500m""#), "{json}");
        assert_eq!(serde_json::from_str::<Resources>(&json).expect("back"), r);
    }
}
