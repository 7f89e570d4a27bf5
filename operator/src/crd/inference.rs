//! The InferenceService resource: long-running replicas serving on a port, scaled between
//! minReplicas and maxReplicas. Mirrors `universal.v1.InferenceServiceSpec`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::WorkloadStatus;
use super::template::ReplicaTemplate;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "universal.dev",
    version = "v1alpha1",
    kind = "InferenceService",
    namespaced,
    status = "WorkloadStatus",
    shortname = "uisvc",
    category = "universal",
    doc = "Long-running inference replicas placed by Universal on the hardware that fits them best.",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a DNS-1123 label (at most 63 characters, no dots): Universal workload names are labels"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"),
    validation = Rule::new("!has(self.replicas) || !has(self.maxReplicas) || self.replicas <= self.maxReplicas").message("replicas must not exceed maxReplicas"),
    validation = Rule::new("!has(self.replicas) || !has(self.minReplicas) || self.replicas >= self.minReplicas").message("replicas must be at least minReplicas"),
)]
pub struct InferenceServiceSpec {
    pub template: ReplicaTemplate,
    /// Replicas wanted now; unset: minReplicas, or 1. With autoscaling it only sets the
    /// initial count and Universal moves it between minReplicas and maxReplicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: Option<u32>,
    /// Fewest replicas; unset: replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub min_replicas: Option<u32>,
    /// Most replicas; unset: replicas (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_replicas: Option<u32>,
    /// Port the process serves on; unset or 0: each replica gets a free port in $PORT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<u32>,
    /// Unset: ready as soon as the process runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Unset: restarted only when the process exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Unset: the replica count changes only when spec.replicas does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// 0..1000; unset: 900 (high).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
    /// Queue whose quota the replicas count against; unset: "default".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub queue: Option<String>,
}

/// A health check the agent runs against each replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.httpGet) != has(self.tcpSocket)").message("set exactly one of httpGet and tcpSocket"))]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_delay_seconds: Option<u32>,
    /// Unset: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<u32>,
    /// Unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<u32>,
    /// Unset: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<u32>,
    /// Unset: 1; must be 1 for a liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub success_threshold: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    /// Unset: "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// Unset or 0: the replica's serving port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpSocketAction {
    /// Unset or 0: the replica's serving port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<u32>,
}

/// Moves the replica count between minReplicas and maxReplicas to keep a load metric near
/// its target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.target > 0.0").message("target must be greater than 0"))]
pub struct Autoscaling {
    /// Unset: Concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<ScalingMetric>,
    /// Target value of the metric per replica; greater than zero.
    pub target: f64,
    /// Seconds the metric must stay low before replicas are removed; unset: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<u32>,
    /// Seconds the metric is averaged over to decide; unset: 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub stable_window_seconds: Option<u32>,
    /// Seconds a burst is judged over (at twice the target, replicas are added at once);
    /// unset: 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub panic_window_seconds: Option<u32>,
    /// With metric Prometheus: what to scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ScalingMetric {
    /// In-flight requests per replica, measured by the gateway.
    Concurrency,
    /// Requests per second per replica, measured by the gateway.
    RequestsPerSecond,
    /// Mean accelerator utilization, percent (not measured yet: refused).
    DeviceUtilization,
    /// Compute utilization, percent of the requested compute (not measured yet: refused).
    ComputeUtilization,
    /// A gauge the replicas serve in Prometheus text format (`prometheus`).
    Prometheus,
}

/// A metric each replica serves, scraped by Universal's leader.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Metric name; every series of it is summed per replica.
    pub name: String,
    /// Unset: /metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Unset: the serving port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// How replicas are replaced when the spec changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.maxSurge) ? self.maxSurge : 1) + (has(self.maxUnavailable) ? self.maxUnavailable : 0) > 0").message("maxSurge and maxUnavailable must not both be 0"))]
pub struct RollingUpdate {
    /// Extra replicas allowed during an update; unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_surge: Option<u32>,
    /// Replicas allowed to be unavailable during an update; unset: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_unavailable: Option<u32>,
}
