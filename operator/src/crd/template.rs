//! What every replica (or training worker) runs and needs: the replica template shared by
//! InferenceService and TrainingJob. Mirrors `universal.v1.ReplicaTemplate`: requests name
//! capabilities (compute units, memory, accelerator memory and speed), never machine types.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity;

/// The process every replica runs, what it needs, and where it may run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaTemplate {
    /// Executable and its leading arguments; the first element must not be empty.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Further arguments appended to command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the process. Universal sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
    /// MASTER_PORT, PORT and the device visibility variables itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// Absolute path; unset: the agent's per-replica scratch directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub working_dir: Option<String>,
    /// What one replica needs, in universal units.
    pub resources: Resources,
    /// Constraints and preferences on where replicas run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// User id the replica runs as. Unset: its namespace's own user on the node. Setting it or
    /// runAsGroup is refused outside the operator's --host-identity-namespaces and needs
    /// Universal's cluster-admin (`create hostidentities`); even as root (0) the process has
    /// no capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    /// Group id the replica runs as (its only group). Unset: its namespace's own group on the
    /// node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Letters, digits, '_', '-' and '.', not starting with a digit.
    #[schemars(regex(pattern = r"^[A-Za-z_.-][A-Za-z0-9_.-]*$"))]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// What one replica needs. Quantities in Kubernetes syntax.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Universal compute units (1 = one reference CPU core): "500m", "4". Greater than zero.
    #[schemars(schema_with = "quantity::schema")]
    pub compute: String,
    /// Memory in bytes: "512Mi", "64Gi". Greater than zero.
    #[schemars(schema_with = "quantity::schema")]
    pub memory: String,
    /// Accelerators, by capability; unset for CPU-only work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<AcceleratorRequest>,
}

/// What the work needs from accelerators, by capability rather than by model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.minDevices) || !has(self.maxDevices) || self.minDevices <= self.maxDevices").message("minDevices must not exceed maxDevices"),
    validation = Rule::new("!has(self.shareable) || !self.shareable || ((!has(self.minDevices) || self.minDevices <= 1) && (!has(self.maxDevices) || self.maxDevices <= 1))").message("a shareable request takes at most one device"),
)]
pub struct AcceleratorRequest {
    /// Device memory the replica needs in total, divided evenly over its devices: "80Gi" fits
    /// one 80 GB device or, with maxDevices 2, two 40 GB devices.
    #[schemars(schema_with = "quantity::schema")]
    pub memory: String,
    /// Dense bf16 tera-FLOPS needed in total; unset: no requirement beyond memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub bf16_tflops: Option<f64>,
    /// Fewest devices the replica runs on; unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub min_devices: Option<u32>,
    /// Most devices the replica may be split across; unset: minDevices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_devices: Option<u32>,
    /// The replica may take a fraction of one device when its memory fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shareable: Option<bool>,
    /// Which of a replica's devices must share a fast interconnect; unset: Any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interconnect: Option<Interconnect>,
    /// Device models (hardware catalog names, e.g. "H100-SXM5-80GB") allowed; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Device models never used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_models: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Interconnect {
    /// No requirement.
    Any,
    /// Training: every worker on one node.
    SameNode,
    /// A replica's devices form one NVLink island.
    #[serde(rename = "NVLink")]
    NvLink,
}

/// Hard constraints and soft preferences on where replicas run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Label selector over node labels: "zone=a,tier in (gold,silver),!spot".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Node classes (hardware catalog names) allowed; empty: every class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_classes: Vec<String>,
    /// Node classes never used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_classes: Vec<String>,
    /// Taints the replicas tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// What to optimize when several placements fit; unset: Cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Preference>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Preference {
    /// The cheapest placement that fits.
    Cost,
    /// The fastest hardware that fits.
    Speed,
}

/// Lets replicas run on nodes with matching taints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''").message("value must be empty with operator Exists"),
)]
pub struct Toleration {
    /// Empty with operator Exists tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Unset: Equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Unset: every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// Only with effect NoExecute: how long a replica stays after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}
