//! Who is calling: a user name and the groups it belongs to, from a client certificate, a
//! static token or an OIDC token.

use std::fmt;

/// Group of every node agent's credential (`system:node:{name}` users).
pub const NODES_GROUP: &str = "system:nodes";
/// Members are cluster administrators whatever the role bindings say (the bootstrap admin).
pub const MASTERS_GROUP: &str = "system:masters";
/// Scheduler replicas: agents serve their logs to this group only.
pub const SCHEDULERS_GROUP: &str = uni_core::tls::SCHEDULERS_GROUP;
/// Members may only exchange a CSR for a node certificate (agents joining).
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// Prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

impl Subject {
    pub fn new(user: impl Into<String>, groups: Vec<String>) -> Self {
        Self {
            user: user.into(),
            groups,
        }
    }

    /// The node this subject is the agent of, if it is a node credential.
    pub fn node(&self) -> Option<&str> {
        self.user
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|_| self.groups.iter().any(|g| g == NODES_GROUP))
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)
    }
}
