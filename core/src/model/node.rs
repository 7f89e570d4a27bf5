//! Nodes: machines running uni-agent.

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::inventory::Inventory;
use super::meta::ObjectMeta;
use super::resources::ResourceAmounts;
use super::taint::Taint;
use super::time::UnixMillis;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    pub meta: ObjectMeta,
    pub spec: NodeSpec,
    pub status: NodeStatus,
}

/// What administrators set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSpec {
    pub taints: Vec<Taint>,
    pub cordoned: bool,
}

/// How much of one device is allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceUsage {
    pub index: u32,
    pub allocated_milli: u32,
    pub allocated_memory_bytes: u64,
}

/// What the agent and the scheduler observe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeStatus {
    pub inventory: Inventory,
    pub capacity: ResourceAmounts,
    /// Capacity less the system reservation.
    pub allocatable: ResourceAmounts,
    pub allocated: ResourceAmounts,
    pub devices: Vec<DeviceUsage>,
    pub conditions: Vec<Condition>,
    pub ready: bool,
    pub draining: bool,
    pub last_heartbeat: UnixMillis,
    pub agent_version: String,
    pub address: String,
    /// From the hardware catalog.
    pub node_class: String,
    /// USD per hour for the whole node, from the hardware catalog.
    pub price_per_hour: f64,
    /// The agent's gRPC endpoint, where replica logs are served.
    pub agent_endpoint: String,
    /// Replicas allocated here.
    pub replicas: u32,
}

impl Node {
    /// Ready and not cordoned: may receive new placements.
    pub fn is_schedulable(&self) -> bool {
        self.status.ready && !self.spec.cordoned && !self.status.draining
    }

    /// What is left to allocate.
    pub fn free(&self) -> ResourceAmounts {
        self.status
            .allocatable
            .saturating_sub(&self.status.allocated)
    }
}
