//! Inference services: long-running replicas serving on ports, probed, scaled by load.

use serde::{Deserialize, Serialize};

use super::priority;
use super::queue::DEFAULT_QUEUE;
use super::template::ReplicaTemplate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceServiceSpec {
    pub template: ReplicaTemplate,
    pub replicas: ReplicaCount,
    /// 0: the agent assigns a port per replica and passes it in `$PORT`.
    pub port: u16,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub autoscaling: Option<Autoscaling>,
    pub priority: i32,
    pub rolling_update: RollingUpdate,
    pub queue: String,
}

impl Default for InferenceServiceSpec {
    fn default() -> Self {
        Self {
            template: ReplicaTemplate::default(),
            replicas: ReplicaCount::default(),
            port: 0,
            readiness_probe: None,
            liveness_probe: None,
            autoscaling: None,
            priority: priority::HIGH,
            rolling_update: RollingUpdate::default(),
            queue: DEFAULT_QUEUE.to_string(),
        }
    }
}

/// `min <= desired <= max`; the autoscaler moves `desired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaCount {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

impl Default for ReplicaCount {
    fn default() -> Self {
        Self {
            min: 1,
            max: 1,
            desired: 1,
        }
    }
}

/// Written like the wire's oneof: `action: {http_get: {path: /healthz}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "ActionRepr", try_from = "ActionRepr")]
pub enum ProbeAction {
    /// Success is a 2xx or 3xx answer. Port 0 = the replica's serving port.
    HttpGet { path: String, port: u16 },
    /// Success is an accepted connection. Port 0 = the replica's serving port.
    TcpSocket { port: u16 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_get: Option<HttpGetRepr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<TcpSocketRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HttpGetRepr {
    path: String,
    port: u16,
}

impl Default for HttpGetRepr {
    fn default() -> Self {
        Self {
            path: "/".to_string(),
            port: 0,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TcpSocketRepr {
    port: u16,
}

impl From<ProbeAction> for ActionRepr {
    fn from(a: ProbeAction) -> Self {
        match a {
            ProbeAction::HttpGet { path, port } => Self {
                http_get: Some(HttpGetRepr { path, port }),
                tcp_socket: None,
            },
            ProbeAction::TcpSocket { port } => Self {
                http_get: None,
                tcp_socket: Some(TcpSocketRepr { port }),
            },
        }
    }
}

impl TryFrom<ActionRepr> for ProbeAction {
    type Error = String;

    fn try_from(r: ActionRepr) -> Result<Self, String> {
        match (r.http_get, r.tcp_socket) {
            (Some(h), None) => Ok(Self::HttpGet {
                path: h.path,
                port: h.port,
            }),
            (None, Some(t)) => Ok(Self::TcpSocket { port: t.port }),
            _ => Err("probe action must set exactly one of http_get or tcp_socket".to_string()),
        }
    }
}

impl Default for ProbeAction {
    fn default() -> Self {
        Self::TcpSocket { port: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl Probe {
    pub const DEFAULT_PERIOD_SECONDS: u32 = 10;
    pub const DEFAULT_TIMEOUT_SECONDS: u32 = 1;
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
    pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            action: ProbeAction::default(),
            initial_delay_seconds: 0,
            period_seconds: Self::DEFAULT_PERIOD_SECONDS,
            timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS,
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            success_threshold: Self::DEFAULT_SUCCESS_THRESHOLD,
        }
    }
}

/// The per-replica load signal an inference service scales on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingMetric {
    /// In-flight requests.
    #[default]
    Concurrency,
    RequestsPerSecond,
    /// Mean accelerator utilization, percent.
    DeviceUtilization,
    /// Compute utilization, percent of the request.
    ComputeUtilization,
    /// A gauge the replicas expose in Prometheus text format ([`Autoscaling::prometheus`]).
    Prometheus,
}

/// A metric each replica serves, scraped by the leader's gateway once a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusMetric {
    /// Every series of this name (any labels) is summed per replica.
    pub name: String,
    pub path: String,
    /// 0: the replica's serving port.
    pub port: u16,
}

impl Default for PrometheusMetric {
    fn default() -> Self {
        Self {
            name: String::new(),
            path: "/metrics".to_string(),
            port: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Autoscaling {
    pub metric: ScalingMetric,
    /// Target value of the metric per replica.
    pub target: f64,
    /// How long the metric must stay low before replicas are removed.
    pub scale_down_delay_seconds: u32,
    /// The metric is averaged over this window to decide.
    pub stable_window_seconds: u32,
    /// A burst is judged over this shorter window: at twice the target or more it scales up
    /// at once (panic mode, which does not scale down until a stable window has passed).
    pub panic_window_seconds: u32,
    /// With `metric: prometheus`, what to scrape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
}

impl Autoscaling {
    pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: u32 = 300;
    pub const DEFAULT_STABLE_WINDOW_SECONDS: u32 = 60;
    pub const DEFAULT_PANIC_WINDOW_SECONDS: u32 = 6;
    /// The longest window the gateway keeps.
    pub const MAX_WINDOW_SECONDS: u32 = 3600;
}

impl Default for Autoscaling {
    fn default() -> Self {
        Self {
            metric: ScalingMetric::default(),
            target: 0.0,
            scale_down_delay_seconds: Self::DEFAULT_SCALE_DOWN_DELAY_SECONDS,
            stable_window_seconds: Self::DEFAULT_STABLE_WINDOW_SECONDS,
            panic_window_seconds: Self::DEFAULT_PANIC_WINDOW_SECONDS,
            prometheus: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollingUpdate {
    /// Extra replicas above desired during an update.
    pub max_surge: u32,
    /// Replicas that may be unavailable during an update.
    pub max_unavailable: u32,
}

impl Default for RollingUpdate {
    fn default() -> Self {
        Self {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}
