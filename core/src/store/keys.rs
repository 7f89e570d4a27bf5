//! Typed keys under `/universal/v1/`. Every key is built and parsed here, never by ad-hoc
//! string formatting elsewhere, so the key space has one definition.
//!
//! | key | written by |
//! |---|---|
//! | `nodes/{node}` | the agent, bound to its lease |
//! | `workloads/{namespace}/{name}` | the API |
//! | `allocations/{node}/{id}` | the scheduler leader |
//! | `status/{namespace}/{name}/{replica}` | agents |
//! | `queues/{name}` | the API |
//! | `events/{namespace}/{id}` | every component |
//! | `election/{name}` | scheduler replicas |
//! | `rolebindings/{namespace or _cluster}/{name}` | the API |
//! | `gateway-load/{identity}` | each scheduler replica's inference gateway, bound to a lease |

use std::str::FromStr;

use crate::{Error, Result};

/// Root of the key space; the version segment lets a future layout live beside this one.
pub const ROOT: &str = "/universal/v1/";

/// A key kind with a fixed number of segments under its collection.
pub trait TypedKey: Sized {
    /// Collection segment, e.g. `nodes`.
    const COLLECTION: &'static str;

    /// The key as stored.
    fn format(&self) -> String;

    /// Parses a stored key, naming what is wrong with it.
    fn parse(key: &str) -> Result<Self>;

    /// Prefix of every key of this kind.
    fn prefix() -> String {
        format!("{ROOT}{}/", Self::COLLECTION)
    }
}

/// A segment must be non-empty and free of `/` and control characters, so keys parse back.
pub fn check_segment(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.contains('/') {
        return Err(Error::invalid(field, "must not contain '/'"));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn split<'a, const N: usize>(key: &'a str, collection: &str) -> Result<[&'a str; N]> {
    let bad =
        |why: &str| Error::invalid("key", format!("{key:?} is not a {collection} key: {why}"));
    let rest = key
        .strip_prefix(ROOT)
        .and_then(|r| r.strip_prefix(collection))
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| bad(&format!("expected prefix {ROOT}{collection}/")))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let parts: [&str; N] = parts
        .try_into()
        .map_err(|p: Vec<&str>| bad(&format!("expected {N} segments, found {}", p.len())))?;
    for p in parts {
        check_segment("key", p).map_err(|e| bad(&e.to_string()))?;
    }
    Ok(parts)
}

fn field<T: FromStr>(key: &str, name: &str, raw: &str) -> Result<T> {
    raw.parse()
        .map_err(|_| Error::invalid("key", format!("{key:?}: bad {name} {raw:?}")))
}

macro_rules! typed_key {
    ($(#[$doc:meta])* $name:ident, $collection:literal, $($field:ident: $ty:ty),+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            $(pub $field: $ty),+
        }

        impl $name {
            /// Builds the key, checking that every segment is valid.
            pub fn new($($field: impl Into<$ty>),+) -> Result<Self> {
                let key = Self { $($field: $field.into()),+ };
                $(check_segment(stringify!($field), &key.$field.to_string())?;)+
                Ok(key)
            }
        }

        impl TypedKey for $name {
            const COLLECTION: &'static str = $collection;

            fn format(&self) -> String {
                let mut s = Self::prefix();
                $(
                    s.push_str(&self.$field.to_string());
                    s.push('/');
                )+
                s.pop();
                s
            }

            fn parse(key: &str) -> Result<Self> {
                let [$($field),+] = split(key, $collection)?;
                Ok(Self { $($field: field(key, stringify!($field), $field)?),+ })
            }
        }
    };
}

typed_key!(
    /// `nodes/{name}`: inventory and capacity, bound to the agent's lease.
    NodeKey, "nodes", name: String
);
typed_key!(
    /// `workloads/{namespace}/{name}`: spec and generation.
    WorkloadKey, "workloads", namespace: String, name: String
);
typed_key!(
    /// `allocations/{node}/{id}`: what runs where, with devices bound.
    AllocationKey, "allocations", node: String, id: String
);
typed_key!(
    /// `status/{namespace}/{name}/{replica}`: one replica's status, written by its agent.
    StatusKey, "status", namespace: String, name: String, replica: u32
);
typed_key!(
    /// `queues/{name}`: a tenant's share of the fleet.
    QueueKey, "queues", name: String
);
typed_key!(
    /// `events/{namespace}/{id}`: events about objects in a namespace.
    EventKey, "events", namespace: String, id: String
);
typed_key!(
    /// `election/{name}`: the leader key of an election (`election/scheduler`).
    ElectionKey, "election", name: String
);

typed_key!(
    /// `rolebindings/{scope}/{name}`: who may do what; the scope is a namespace, or
    /// [`CLUSTER_SCOPE`] for cluster-wide bindings.
    RoleBindingKey, "rolebindings", scope: String, name: String
);
typed_key!(
    /// `gateway-load/{identity}`: what one scheduler replica's inference gateway measures,
    /// bound to a lease so a replica that is gone stops counting.
    GatewayLoadKey, "gateway-load", identity: String
);

/// Scope segment of cluster-wide role bindings; no namespace can be named so.
pub const CLUSTER_SCOPE: &str = "_cluster";

impl RoleBindingKey {
    /// The key of a binding in `namespace` (empty: cluster-wide).
    pub fn of(namespace: &str, name: &str) -> Result<Self> {
        let scope = if namespace.is_empty() {
            CLUSTER_SCOPE
        } else {
            namespace
        };
        Self::new(scope, name)
    }

    /// Prefix of every binding in one scope (`namespace`, or cluster-wide when empty).
    pub fn scope_prefix(namespace: &str) -> String {
        let scope = if namespace.is_empty() {
            CLUSTER_SCOPE
        } else {
            namespace
        };
        format!("{}{scope}/", Self::prefix())
    }
}

impl WorkloadKey {
    /// Prefix of every workload in `namespace`.
    pub fn namespace_prefix(namespace: &str) -> String {
        format!("{}{namespace}/", Self::prefix())
    }
}

impl AllocationKey {
    /// Prefix of one node's allocations: what its agent watches.
    pub fn node_prefix(node: &str) -> String {
        format!("{}{node}/", Self::prefix())
    }
}

impl StatusKey {
    /// Prefix of every replica status of one workload.
    pub fn workload_prefix(namespace: &str, name: &str) -> String {
        format!("{}{namespace}/{name}/", Self::prefix())
    }
}

impl EventKey {
    pub fn namespace_prefix(namespace: &str) -> String {
        format!("{}{namespace}/", Self::prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_documented_layout() {
        let k = StatusKey::new("team-a", "llama", 3u32).unwrap();
        assert_eq!(k.format(), "/universal/v1/status/team-a/llama/3");
        assert_eq!(StatusKey::parse(&k.format()).unwrap(), k);
        assert_eq!(
            AllocationKey::node_prefix("n1"),
            "/universal/v1/allocations/n1/"
        );
        assert!(k
            .format()
            .starts_with(&StatusKey::workload_prefix("team-a", "llama")));
    }

    #[test]
    fn rejects_bad_keys_with_a_reason() {
        let err = NodeKey::parse("/universal/v1/workloads/a/b").unwrap_err();
        assert!(err.to_string().contains("not a nodes key"), "{err}");
        let err = WorkloadKey::parse("/universal/v1/workloads/a").unwrap_err();
        assert!(err.to_string().contains("expected 2 segments"), "{err}");
        let err = StatusKey::parse("/universal/v1/status/a/b/x").unwrap_err();
        assert!(err.to_string().contains("bad replica"), "{err}");
        let err = WorkloadKey::new("a/b", "c").unwrap_err();
        assert!(
            err.to_string().contains("namespace: must not contain '/'"),
            "{err}"
        );
        assert!(NodeKey::new("").is_err());
    }
}
