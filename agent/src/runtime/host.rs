//! This node as every replica supervisor sees it: the store, cgroups, the shim, the status
//! reporter, metrics, the replica table, the options replicas run with, the device nodes
//! they may or may not open and the state of the node's lease.

use std::path::PathBuf;
use std::sync::Arc;

use uni_core::store::KvStore;

use super::fence::LeaseLost;
use super::finished_runs::FinishedRuns;
use super::launcher::ShimMode;
use super::namespace_users::NamespaceUsers;
use super::options::RuntimeOptions;
use super::replica_table::ReplicaTable;
use super::reporter::StatusReporter;
use crate::cgroup::CgroupManager;
use crate::devices::DeviceNodes;
use crate::metrics::Metrics;

/// What every supervisor shares.
pub struct ReplicaHost {
    pub node: String,
    pub store: Arc<dyn KvStore>,
    /// `DATA_DIR/replicas`.
    pub root: PathBuf,
    pub cgroups: CgroupManager,
    pub shim: ShimMode,
    pub reporter: StatusReporter,
    pub metrics: Metrics,
    pub replicas: ReplicaTable,
    /// Output of replicas that ended and whose allocation is gone.
    pub finished: FinishedRuns,
    pub opts: RuntimeOptions,
    /// Variables of the agent every replica inherits.
    pub base_env: Vec<(String, String)>,
    pub has_accelerators: bool,
    /// This node's accelerator device nodes; a replica can open only those bound to it.
    pub device_nodes: DeviceNodes,
    /// Since when the node's lease is lost, for fencing.
    pub lease: LeaseLost,
    /// Each namespace's own user on this node, when enabled.
    pub namespace_users: Option<NamespaceUsers>,
}

impl ReplicaHost {
    pub fn inherited_env() -> Vec<(String, String)> {
        super::env::inherited()
    }
}
