//! Allocations: what runs where. Written by the scheduler leader, watched by the node's agent.

use serde::{Deserialize, Serialize};

use super::resources::ResourceAmounts;
use super::template::EnvVar;
use super::time::UnixMillis;
use crate::units::MILLI_PER_DEVICE;

/// One accelerator device (or a share of it) bound to a replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceBinding {
    /// Index on the node, as `CUDA_VISIBLE_DEVICES` counts.
    pub index: u32,
    pub uuid: String,
    /// Thousandths of the device, 1..=1000.
    pub share_milli: u32,
    /// Device memory reserved on this device.
    pub memory_bytes: u64,
}

impl DeviceBinding {
    pub fn is_whole(&self) -> bool {
        self.share_milli >= MILLI_PER_DEVICE
    }
}

/// One replica (or training worker) placed on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Allocation {
    /// Unique; part of the store key `allocations/{node}/{id}`.
    pub id: String,
    pub namespace: String,
    pub workload: String,
    /// Replica index; for training jobs the worker's RANK.
    pub replica: u32,
    pub node: String,
    pub compute_milli: u64,
    pub memory_bytes: u64,
    pub devices: Vec<DeviceBinding>,
    /// Device models the request allowed (empty: any), kept so the scheduler can learn its
    /// request mix from what runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Port the replica serves on (inference) or the rendezvous port (training rank 0).
    pub port: u16,
    /// Uid of the workload this allocation was placed for: a workload deleted and created again
    /// under the same name has a new uid, and its agent does not run the new spec on an
    /// allocation of the old one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub workload_uid: String,
    /// Workload generation this allocation was placed for (older during a rolling update).
    pub generation: i64,
    /// Inference: [`ServiceTemplate::hash`](super::ServiceTemplate::hash) of what the replica
    /// runs; a rolling update replaces replicas whose hash is not the spec's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub template_hash: String,
    pub created: UnixMillis,
    /// The workload's queue, whose quota this allocation counts against.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// Variables the scheduler sets for this replica, e.g. a training worker's `RANK`,
    /// `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Set when the replica must stop (preempted, or its gang resized): its agent writes the
    /// notice file, sends SIGTERM and SIGKILL at the deadline, and reports it Preempted; the
    /// leader removes the allocation once it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<StopNotice>,
    /// Set (to when it began) when an inference replica is no longer wanted: gateways send it
    /// no new requests, and the leader removes the allocation (so the agent stops it) once no
    /// gateway has a request in flight on it, or after [`Allocation::DRAIN_TIMEOUT_MILLIS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draining: Option<UnixMillis>,
}

/// Why and by when a replica must stop; written to the file `UNIVERSAL_PREEMPTION_NOTICE_FILE`
/// names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StopNotice {
    /// `Preempted` (a higher-priority workload of the same queue), `Reclaimed` (another queue
    /// takes back its guarantee) or `Resized` (an elastic gang restarts at another size).
    pub reason: String,
    pub message: String,
    /// The workload the capacity goes to (`namespace/name`), if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// SIGKILL after this.
    pub deadline: UnixMillis,
    /// A resize: the gang's size when it starts again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_to: Option<u32>,
}

impl Allocation {
    /// The longest a replica drains before it is stopped with requests in flight.
    pub const DRAIN_TIMEOUT_MILLIS: u64 = 30_000;

    /// What the allocation takes from its node.
    pub fn amounts(&self) -> ResourceAmounts {
        ResourceAmounts {
            compute_milli: self.compute_milli,
            memory_bytes: self.memory_bytes,
            device_milli: self.devices.iter().map(|d| u64::from(d.share_milli)).sum(),
            device_memory_bytes: self.devices.iter().map(|d| d.memory_bytes).sum(),
        }
    }

    /// `namespace/workload/replica`, for messages and logs.
    pub fn replica_key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.workload, self.replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_add_device_shares() {
        let a = Allocation {
            compute_milli: 2000,
            memory_bytes: 5,
            devices: vec![
                DeviceBinding {
                    index: 0,
                    share_milli: 1000,
                    memory_bytes: 80,
                    ..DeviceBinding::default()
                },
                DeviceBinding {
                    index: 1,
                    share_milli: 250,
                    memory_bytes: 20,
                    ..DeviceBinding::default()
                },
            ],
            ..Allocation::default()
        };
        let amounts = a.amounts();
        assert_eq!(amounts.device_milli, 1250);
        assert_eq!(amounts.device_memory_bytes, 100);
        assert!(a.devices[0].is_whole());
        assert!(!a.devices[1].is_whole());
    }
}
