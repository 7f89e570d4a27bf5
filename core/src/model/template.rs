//! What every replica (or worker) of a workload runs.

use serde::{Deserialize, Serialize};

use super::placement::Placement;
use super::resources::Resources;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What every replica (or worker) runs: a process, with what it needs and where it may run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaTemplate {
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    /// Absolute path; empty = the agent's per-replica scratch directory.
    pub working_dir: String,
    pub resources: Resources,
    pub placement: Placement,
    /// User id the replica runs as. `None`: the agent's default user. Naming one (or a
    /// group) is a cluster-admin's privilege (`create hostidentities`), checked by the API.
    pub run_as_user: Option<u32>,
    /// Group id the replica runs as (its only group). `None`: the agent's default group.
    pub run_as_group: Option<u32>,
}
