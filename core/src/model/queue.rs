//! Queues: a tenant's share of the fleet.

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use super::priority;
use super::resources::ResourceAmounts;
use crate::quantity;
use crate::units::devices_to_milli;

/// Queue of workloads that name none.
pub const DEFAULT_QUEUE: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Queue {
    pub meta: ObjectMeta,
    pub spec: QueueSpec,
    pub status: QueueStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSpec {
    /// Always available; unset amounts are zero.
    pub guaranteed: Quota,
    /// Never exceeded; unset amounts are unlimited.
    pub max: Quota,
    pub priority: i32,
    /// Fair-share weight beyond the guarantee, at least 1.
    pub weight: u32,
    /// The queue this one borrows from and lends to; empty: a top-level queue.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent: String,
    /// Most used beyond the guarantee; unset amounts are unlimited.
    pub borrowing_limit: Quota,
    /// Most of the unused guarantee lent to others; unset amounts lend all of it.
    pub lending_limit: Quota,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            guaranteed: Quota::default(),
            max: Quota::default(),
            priority: priority::NORMAL,
            weight: 1,
            parent: String::new(),
            borrowing_limit: Quota::default(),
            lending_limit: Quota::default(),
        }
    }
}

/// An amount of resources as people write it; `None` means "none" in a guarantee and
/// "unlimited" in a maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    #[serde(
        rename = "compute",
        with = "quantity::as_opt_milli",
        skip_serializing_if = "Option::is_none"
    )]
    pub compute_milli: Option<u64>,
    #[serde(
        rename = "memory",
        with = "quantity::as_opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_bytes: Option<u64>,
    /// Whole devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<u32>,
    #[serde(
        rename = "device_memory",
        with = "quantity::as_opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_memory_bytes: Option<u64>,
}

impl Quota {
    /// As amounts, with unset fields read as `unset` (0 for a guarantee, `u64::MAX` for a
    /// maximum).
    pub fn to_amounts(&self, unset: u64) -> ResourceAmounts {
        ResourceAmounts {
            compute_milli: self.compute_milli.unwrap_or(unset),
            memory_bytes: self.memory_bytes.unwrap_or(unset),
            device_milli: self.devices.map_or(unset, devices_to_milli),
            device_memory_bytes: self.device_memory_bytes.unwrap_or(unset),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueStatus {
    pub usage: ResourceAmounts,
    pub pending_workloads: u32,
    pub running_workloads: u32,
    /// Usage beyond the guarantee.
    pub borrowed: ResourceAmounts,
    /// Unused guarantee others are using.
    pub lent: ResourceAmounts,
}

impl QueueSpec {
    pub fn guaranteed_amounts(&self) -> ResourceAmounts {
        self.guaranteed.to_amounts(0)
    }

    pub fn max_amounts(&self) -> ResourceAmounts {
        self.max.to_amounts(u64::MAX)
    }

    /// The guarantee plus the borrowing limit, saturating: the most the queue may use.
    pub fn borrowing_ceiling(&self) -> ResourceAmounts {
        let b = self.borrowing_limit.to_amounts(u64::MAX);
        self.guaranteed_amounts()
            .saturating_add(&b)
            .min_each(&self.max_amounts())
    }

    /// The part of the guarantee never lent (the guarantee less the lending limit).
    pub fn kept_amounts(&self) -> ResourceAmounts {
        let g = self.guaranteed_amounts();
        g.saturating_sub(&self.lending_limit.to_amounts(u64::MAX))
    }
}

impl Quota {
    /// Which amounts are set, in [`ResourceAmounts`] order (compute, memory, devices, device
    /// memory).
    pub fn set(&self) -> [bool; 4] {
        [
            self.compute_milli.is_some(),
            self.memory_bytes.is_some(),
            self.devices.is_some(),
            self.device_memory_bytes.is_some(),
        ]
    }
}
