//! Status of InferenceService and TrainingJob resources, written by the operator from what
//! Universal reports: conditions, replica counts, where each replica runs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator maintains on workload resources.
pub mod condition {
    /// Universal accepted the spec (False: invalid spec or name conflict, with the reason).
    pub const ACCEPTED: &str = "Accepted";
    /// Every wanted replica (or the whole gang) has a placement on a node.
    pub const SCHEDULED: &str = "Scheduled";
    /// Inference: enough replicas pass readiness. Training: every worker runs (or finished).
    pub const READY: &str = "Ready";
    /// The workload failed or cannot be mirrored; reason and message say why.
    pub const FAILED: &str = "Failed";
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The resource generation the operator last mirrored into Universal (or rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Universal's phase: Pending, Scheduled, Running, Ready, Succeeded, Failed, Terminating,
    /// Preempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Replicas (or workers) with a placement on a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Replicas passing readiness (inference) or running (training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
    /// Replicas (or workers) wanted now; with autoscaling, Universal's current choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    /// Where each replica runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<ReplicaPlacement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Uid of the Universal workload this resource is mirrored to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universal_uid: Option<String>,
    /// Price per hour of the current placement in USD, from the hardware catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// InferenceService: its URL under Universal's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// One replica (or training worker) and the node it runs on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaPlacement {
    /// Replica index; for training jobs the worker's RANK.
    pub replica: u32,
    pub node: String,
    /// Address of the node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Serving port (inference) or rendezvous port (training rank 0); 0 when none.
    #[serde(default)]
    pub port: u32,
    /// Thousandths of a universal compute unit.
    #[serde(default)]
    pub compute_milli: u64,
    #[serde(default)]
    pub memory_bytes: u64,
    /// Accelerator devices bound to the replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DevicePlacement>,
    /// Replica phase as its agent reports it: Pending, Starting, Running, Ready, Succeeded,
    /// Failed, OOMKilled.
    pub phase: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevicePlacement {
    /// Index on the node, as CUDA_VISIBLE_DEVICES counts.
    pub index: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// Share of the device in thousandths (1000 = the whole device).
    pub share_milli: u32,
}
