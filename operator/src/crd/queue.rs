//! The Queue resource (cluster-scoped): a tenant's share of the fleet, with guaranteed and
//! maximum quota. Mirrors `universal.v1.QueueSpec`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::quantity;

#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "universal.dev",
    version = "v1alpha1",
    kind = "Queue",
    status = "QueueStatus",
    shortname = "uq",
    category = "universal",
    doc = "A tenant's share of the Universal fleet: guaranteed and maximum quota, priority, fair-share weight.",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pendingWorkloads"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.runningWorkloads"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a DNS-1123 label (at most 63 characters, no dots)"),
)]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    /// Always available to the queue's workloads, preempting borrowers if needed; unset
    /// fields: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guaranteed: Option<Quota>,
    /// Never exceeded; unset fields: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Quota>,
    /// 0..1000; among queues all below (or all above) their guarantee, higher-priority queues
    /// are served first. Unset: 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub priority: Option<i32>,
    /// Fair-share weight beyond the guarantee (weighted dominant resource share); unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: Option<u32>,
    /// The queue this one borrows from and lends to (its cohort); unset: a top-level queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Most used beyond the guarantee; unset fields: unlimited (up to max).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowing_limit: Option<Quota>,
    /// Most of the unused guarantee lent to other queues; unset fields: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lending_limit: Option<Quota>,
}

/// An amount of resources as people write it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Universal compute units: "64".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity::optional_schema")]
    pub compute: Option<String>,
    /// Bytes: "512Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity::optional_schema")]
    pub memory: Option<String>,
    /// Whole accelerator devices (shares add up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub devices: Option<u32>,
    /// Accelerator device memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "quantity::optional_schema")]
    pub device_memory: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Allocated to the queue's workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<QueueUsage>,
    /// Used beyond the guarantee: borrowed, and reclaimable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowed: Option<QueueUsage>,
    /// Unused guarantee other queues are using.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lent: Option<QueueUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_workloads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_workloads: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueUsage {
    pub compute_milli: u64,
    pub memory_bytes: u64,
    /// Thousandths of a device.
    pub device_milli: u64,
    pub device_memory_bytes: u64,
}
