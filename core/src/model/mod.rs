//! The domain model: Rust types separate from the wire (prost) types, serialized with serde for
//! storage and for files people write. Quantities are integers in universal units
//! (see [`crate::units`]); serde writes the ones people edit as quantity strings.

pub mod access;
pub mod allocation;
pub mod cluster;
pub mod condition;
pub mod event;
pub mod inference;
pub mod inventory;
pub mod load;
pub mod meta;
pub mod node;
pub mod placement;
pub mod priority;
pub mod queue;
pub mod resources;
pub mod revision;
pub mod selector;
pub mod status;
pub mod taint;
pub mod template;
pub mod time;
pub mod training;
pub mod workload;

pub use access::{Resource, Role, RoleBinding, Verb};
pub use allocation::{Allocation, DeviceBinding, StopNotice};
pub use cluster::{
    ClusterSummary, DeviceModelSummary, NodeClassSummary, NodeCounts, WorkloadCounts,
};
pub use condition::{Condition, ConditionStatus};
pub use event::{Event, EventSource, EventType};
pub use inference::{
    Autoscaling, InferenceServiceSpec, Probe, ProbeAction, PrometheusMetric, ReplicaCount,
    RollingUpdate, ScalingMetric,
};
pub use inventory::{AcceleratorDevice, CpuInfo, Inventory, MigMode, NumaNode};
pub use load::{GatewayLoad, ServiceLoad, Signals};
pub use meta::{ObjectMeta, ObjectRef, WorkloadRef, DEFAULT_NAMESPACE, MANAGED_BY};
pub use node::{DeviceUsage, Node, NodeSpec, NodeStatus};
pub use placement::{Placement, Preference};
pub use queue::{Queue, QueueSpec, QueueStatus, Quota, DEFAULT_QUEUE};
pub use resources::{AcceleratorRequest, Interconnect, ResourceAmounts, Resources};
pub use revision::{ServiceTemplate, TemplateRevision, KEPT_REVISIONS};
pub use selector::{Operator, Requirement, Selector};
pub use status::{ReplicaPhase, ReplicaStatus, ReplicaView, WorkloadPhase, WorkloadStatus};
pub use taint::{Taint, TaintEffect, Toleration, TolerationOperator};
pub use template::{EnvVar, ReplicaTemplate};
pub use time::UnixMillis;
pub use training::{RetryPolicy, TrainingJobSpec, WorkerCount, DEFAULT_MASTER_PORT};
pub use workload::{Workload, WorkloadKind, WorkloadSpec};
