//! Identity and bookkeeping carried by every stored object.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::allocation::Allocation;
use super::time::UnixMillis;

/// Namespace of namespaced objects created without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Label naming the system that manages an object's lifecycle (the operator sets
/// `universal.dev/managed-by=uni-operator`); the scheduler does not delete such objects itself.
pub const MANAGED_BY: &str = "universal.dev/managed-by";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: String,
    /// Empty for cluster-scoped objects (nodes, queues).
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Server-assigned id of this incarnation.
    pub uid: String,
    /// Incremented on every spec change.
    pub generation: i64,
    /// Store revision of the last write (the store fills it in on read).
    pub resource_version: i64,
    pub created: UnixMillis,
    /// Set when a graceful deletion is under way.
    pub deleted: Option<UnixMillis>,
}

impl ObjectMeta {
    /// Meta of a namespaced object.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            ..Self::default()
        }
    }

    /// Meta of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects: for messages and logs.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// Points at another object, e.g. the subject of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectRef {
    /// "Workload", "InferenceService", "TrainingJob", "Node", "Queue".
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A workload by namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    pub namespace: String,
    pub name: String,
}

impl WorkloadRef {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The workload `alloc` belongs to.
    pub fn of(alloc: &Allocation) -> Self {
        Self::new(&alloc.namespace, &alloc.workload)
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for WorkloadRef {
    type Err = String;

    /// `namespace/name`, as [`WorkloadRef`] displays.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(Self::new(ns, name)),
            _ => Err(format!("{s:?} is not namespace/name")),
        }
    }
}
