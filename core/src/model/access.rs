//! Access control: roles, what each allows, and the bindings that grant them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;

/// What a caller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Scale,
    Delete,
    Cordon,
    Drain,
}

/// What it does it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Workloads,
    Events,
    /// A workload's replica output.
    Logs,
    RoleBindings,
    Nodes,
    Queues,
    /// Running a namespace's replicas as a host user or group a template names
    /// (`run_as_user`, `run_as_group`) rather than the namespace's own unprivileged user: that
    /// identity's files on every node are the workload's, so only a cluster admin grants it
    /// (role `host-user`, per namespace).
    HostIdentities,
}

impl Resource {
    /// Cluster-scoped resources exist outside namespaces.
    pub fn cluster_scoped(self) -> bool {
        matches!(self, Self::Nodes | Self::Queues)
    }
}

/// A named set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read workloads, events and logs.
    View,
    /// View, and change workloads.
    Edit,
    /// Edit, and manage the namespace's role bindings.
    Admin,
    /// Edit, and name the host user and group replicas run as (root included); granted by
    /// a cluster admin only.
    HostUser,
    /// Everything, everywhere; bound cluster-wide only.
    ClusterAdmin,
}

pub const ROLES: [Role; 5] = [
    Role::View,
    Role::Edit,
    Role::Admin,
    Role::HostUser,
    Role::ClusterAdmin,
];

const READ: [Verb; 3] = [Verb::Get, Verb::List, Verb::Watch];
const WRITE: [Verb; 4] = [Verb::Create, Verb::Update, Verb::Scale, Verb::Delete];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Edit => "edit",
            Self::Admin => "admin",
            Self::HostUser => "host-user",
            Self::ClusterAdmin => "cluster-admin",
        }
    }

    /// Whether the role allows `verb` on `resource`. `cluster_wide` says the binding has no
    /// namespace: only then do cluster-scoped resources come into reach.
    pub fn allows(self, verb: Verb, resource: Resource, cluster_wide: bool) -> bool {
        use Resource as R;
        let read = READ.contains(&verb);
        let write = WRITE.contains(&verb);
        match self {
            Self::ClusterAdmin => cluster_wide,
            _ if resource.cluster_scoped() => {
                // Any role held cluster-wide may look at the fleet; changing it is the
                // cluster-admin's.
                cluster_wide && resource == R::Nodes && read
            }
            Self::View => read && matches!(resource, R::Workloads | R::Events | R::Logs),
            Self::Edit => match resource {
                R::Workloads => read || write,
                R::Events | R::Logs => read,
                R::RoleBindings | R::Nodes | R::Queues | R::HostIdentities => false,
            },
            Self::Admin => match resource {
                R::Workloads | R::RoleBindings => read || write,
                R::Events | R::Logs => read,
                R::Nodes | R::Queues | R::HostIdentities => false,
            },
            Self::HostUser => match resource {
                R::Workloads => read || write,
                R::Events | R::Logs => read,
                R::HostIdentities => verb == Verb::Create,
                R::RoleBindings | R::Nodes | R::Queues => false,
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ROLES.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = ROLES.iter().map(|r| r.as_str()).collect();
            format!("unknown role {s:?}; one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Scale => "scale",
            Self::Delete => "delete",
            Self::Cordon => "cordon",
            Self::Drain => "drain",
        };
        f.write_str(s)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Workloads => "workloads",
            Self::Events => "events",
            Self::Logs => "logs",
            Self::RoleBindings => "rolebindings",
            Self::Nodes => "nodes",
            Self::Queues => "queues",
            Self::HostIdentities => "hostidentities",
        };
        f.write_str(s)
    }
}

/// Every (verb, resource) pair the API has, for reporting what a caller may do.
pub fn permissions() -> impl Iterator<Item = (Verb, Resource)> {
    use Resource as R;
    use Verb as V;
    const PAIRS: &[(R, &[V])] = &[
        (
            R::Workloads,
            &[
                V::Get,
                V::List,
                V::Watch,
                V::Create,
                V::Update,
                V::Scale,
                V::Delete,
            ],
        ),
        (R::Events, &[V::Get, V::List, V::Watch]),
        (R::Logs, &[V::Get]),
        (R::RoleBindings, &[V::Get, V::List, V::Create, V::Delete]),
        (R::Nodes, &[V::Get, V::List, V::Watch, V::Cordon, V::Drain]),
        (R::Queues, &[V::Create, V::Update, V::Delete]),
        (R::HostIdentities, &[V::Create]),
    ];
    PAIRS
        .iter()
        .flat_map(|(r, verbs)| verbs.iter().map(move |v| (*v, *r)))
}

/// Grants `role` to users and groups in `meta.namespace`, or everywhere when it is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleBinding {
    pub meta: ObjectMeta,
    pub role: Role,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for RoleBinding {
    fn default() -> Self {
        Self {
            meta: ObjectMeta::default(),
            role: Role::View,
            users: Vec::new(),
            groups: Vec::new(),
        }
    }
}

impl RoleBinding {
    pub fn cluster_wide(&self) -> bool {
        self.meta.namespace.is_empty()
    }

    /// Whether the binding names this user or one of these groups.
    pub fn binds(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.groups.iter().any(|g| groups.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        use Resource as R;
        for (v, r) in permissions() {
            for wide in [false, true] {
                if Role::View.allows(v, r, wide) {
                    assert!(Role::Edit.allows(v, r, wide), "{v} {r}");
                }
                if Role::Edit.allows(v, r, wide) {
                    assert!(Role::Admin.allows(v, r, wide), "{v} {r}");
                }
                if wide {
                    assert!(Role::ClusterAdmin.allows(v, r, wide), "{v} {r}");
                }
            }
        }
        assert!(!Role::View.allows(Verb::Create, R::Workloads, false));
        assert!(Role::Edit.allows(Verb::Scale, R::Workloads, false));
        assert!(!Role::Edit.allows(Verb::Create, R::RoleBindings, false));
        assert!(Role::Admin.allows(Verb::Create, R::RoleBindings, false));
        assert!(!Role::Admin.allows(Verb::Cordon, R::Nodes, true));
        assert!(Role::View.allows(Verb::List, R::Nodes, true));
        assert!(!Role::View.allows(Verb::List, R::Nodes, false));
        assert!(!Role::ClusterAdmin.allows(Verb::Get, R::Workloads, false));
        assert!(Role::ClusterAdmin.allows(Verb::Drain, R::Nodes, true));
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!("cluster-admin".parse::<Role>(), Ok(Role::ClusterAdmin));
        let err = "root".parse::<Role>().unwrap_err();
        assert!(
            err.contains("view, edit, admin, host-user, cluster-admin"),
            "{err}"
        );
        assert_eq!("host-user".parse::<Role>(), Ok(Role::HostUser));
        // Host identities in the namespace of the binding only.
        assert!(Role::HostUser.allows(Verb::Create, Resource::HostIdentities, false));
        assert!(!Role::Admin.allows(Verb::Create, Resource::HostIdentities, false));
        assert!(!Role::HostUser.allows(Verb::Create, Resource::RoleBindings, false));
    }
}
