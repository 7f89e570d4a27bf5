//! Observed state: of workloads (written by the scheduler) and of replicas (written by agents).

use serde::{Deserialize, Serialize};

use super::allocation::{Allocation, DeviceBinding};
use super::condition::Condition;
use super::revision::TemplateRevision;
use super::time::UnixMillis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadPhase {
    /// Accepted, waiting for placement.
    #[default]
    Pending,
    /// Placed; processes are starting.
    Scheduled,
    Running,
    /// Inference: enough replicas pass readiness.
    Ready,
    Succeeded,
    Failed,
    /// Deletion under way.
    Terminating,
    /// Training: stopped by preemption, waiting to be placed again.
    Preempted,
}

impl WorkloadPhase {
    /// No further transitions happen on their own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaPhase {
    /// Allocated; the agent has not started it.
    #[default]
    Pending,
    Starting,
    Running,
    Ready,
    Succeeded,
    Failed,
    /// Killed for exceeding its memory.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// Stopped after a stop notice (preemption or resize).
    Preempted,
}

impl ReplicaPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::OomKilled | Self::Preempted
        )
    }
}

/// What an agent reports about one replica, under `status/{namespace}/{name}/{replica}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaStatus {
    /// The allocation this status is about; a status for an older allocation is stale.
    pub allocation_id: String,
    pub node: String,
    pub phase: ReplicaPhase,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub restarts: u32,
    pub message: String,
    pub updated: UnixMillis,
}

/// A replica as clients see it: where it runs (from its allocation) and how it is doing
/// (from its agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaView {
    pub replica: u32,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub devices: Vec<DeviceBinding>,
    pub compute_milli: u64,
    pub memory_bytes: u64,
    pub generation: i64,
    /// Inference: the template revision the replica runs (0: not recorded).
    pub revision: u32,
    /// Inference: scaled away, finishing what it has before it stops.
    pub draining: bool,
    pub phase: ReplicaPhase,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub restarts: u32,
    pub message: String,
    pub updated: UnixMillis,
}

impl ReplicaView {
    /// Joins an allocation with its node's address and the agent's status; a status written
    /// for another allocation is ignored.
    pub fn new(alloc: &Allocation, address: &str, status: Option<&ReplicaStatus>) -> Self {
        let fresh = status.filter(|s| s.allocation_id == alloc.id);
        let mut view = Self {
            replica: alloc.replica,
            node: alloc.node.clone(),
            address: address.to_string(),
            port: alloc.port,
            devices: alloc.devices.clone(),
            compute_milli: alloc.compute_milli,
            memory_bytes: alloc.memory_bytes,
            generation: alloc.generation,
            draining: alloc.draining.is_some(),
            updated: alloc.created,
            ..Self::default()
        };
        if let Some(s) = fresh {
            view.phase = s.phase;
            view.exit_code = s.exit_code;
            view.signal = s.signal;
            view.restarts = s.restarts;
            view.message = s.message.clone();
            view.updated = s.updated;
        }
        view
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadStatus {
    pub phase: WorkloadPhase,
    pub conditions: Vec<Condition>,
    pub observed_generation: i64,
    pub replicas_desired: u32,
    pub replicas_placed: u32,
    pub replicas_ready: u32,
    /// Joined from allocations and agents' replica statuses (which the store keeps under their
    /// own keys) when the workload is read through the API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaView>,
    /// CamelCase reason for the phase, e.g. "Unschedulable".
    pub reason: String,
    pub message: String,
    /// Training: gang restarts so far.
    pub restarts: u32,
    pub started: Option<UnixMillis>,
    pub completed: Option<UnixMillis>,
    /// USD per hour of the current placement.
    pub cost_per_hour: f64,
    /// Inference: the service's URL under the gateway, e.g. `http://gw:7080/ml/llm/`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// Inference: the revision of the current template, and how many replicas run it (and
    /// of those, pass readiness).
    pub revision: u32,
    pub updated_replicas: u32,
    pub updated_ready_replicas: u32,
    /// Inference: what the rollout is doing or why it waits; empty when none is under way.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rollout: String,
    /// Inference: the templates run so far, oldest first (at most
    /// [`KEPT_REVISIONS`](super::revision::KEPT_REVISIONS)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<TemplateRevision>,
}

impl WorkloadStatus {
    /// The number of the recorded revision with template `hash` (0: not recorded).
    pub fn revision_of(&self, hash: &str) -> u32 {
        self.revisions
            .iter()
            .find(|x| x.hash == hash)
            .map_or(0, |x| x.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_status_is_ignored() {
        let alloc = Allocation {
            id: "a1".into(),
            replica: 2,
            node: "n1".into(),
            port: 8000,
            ..Allocation::default()
        };
        let status = ReplicaStatus {
            allocation_id: "a1".into(),
            phase: ReplicaPhase::Ready,
            ..ReplicaStatus::default()
        };
        let view = ReplicaView::new(&alloc, "10.0.0.1", Some(&status));
        assert_eq!(
            (view.replica, view.phase, view.port),
            (2, ReplicaPhase::Ready, 8000)
        );
        let stale = ReplicaStatus {
            allocation_id: "old".into(),
            ..status
        };
        let view = ReplicaView::new(&alloc, "10.0.0.1", Some(&stale));
        assert_eq!(view.phase, ReplicaPhase::Pending);
        assert!(ReplicaPhase::OomKilled.is_terminal());
        assert_eq!(
            serde_json::to_string(&ReplicaPhase::OomKilled).expect("json"),
            r#""OOMKilled""#
        );
    }
}
