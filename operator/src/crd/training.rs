//! The TrainingJob resource: workers placed all-or-nothing (gang) that run to completion.
//! Mirrors `universal.v1.TrainingJobSpec`.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::status::WorkloadStatus;
use super::template::ReplicaTemplate;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "universal.dev",
    version = "v1alpha1",
    kind = "TrainingJob",
    namespaced,
    status = "WorkloadStatus",
    shortname = "utj",
    category = "universal",
    doc = "Training workers gang-scheduled by Universal; each gets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.",
    scale(spec_replicas_path = ".spec.workers", status_replicas_path = ".status.replicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a DNS-1123 label (at most 63 characters, no dots): Universal workload names are labels"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.maxWorkers) || self.maxWorkers >= (has(self.workers) ? self.workers : 1)").message("maxWorkers must be at least workers"))]
pub struct TrainingJobSpec {
    pub template: ReplicaTemplate,
    /// Workers placed at once (the gang); unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub workers: Option<u32>,
    /// Elastic jobs: most workers; Universal grows the job toward it when capacity frees up.
    /// Unset: workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_workers: Option<u32>,
    /// Rendezvous port on the rank-0 worker; unset: 29500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub master_port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Higher-priority work may preempt the job; it gets SIGTERM and gracePeriodSeconds to
    /// checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptible: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL on preemption or deletion; unset: 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub grace_period_seconds: Option<u32>,
    /// 0..1000; unset: 500 (normal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub priority: Option<i32>,
    /// Queue whose quota the workers count against; unset: "default".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub queue: Option<String>,
}

/// What happens when a worker fails: the whole gang restarts (torchrun semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.backoffSeconds) ? self.backoffSeconds : 10) <= (has(self.maxBackoffSeconds) ? self.maxBackoffSeconds : 300)").message("backoffSeconds must not exceed maxBackoffSeconds"))]
pub struct RetryPolicy {
    /// Restarts before the job fails; unset: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_restarts: Option<u32>,
    /// Seconds before the first restart, doubling after every failure; unset: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub backoff_seconds: Option<u32>,
    /// Cap on the backoff; unset: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_backoff_seconds: Option<u32>,
}
