//! Which keys a node's credential reaches: pure decisions on key names and stored values.
//! The service (`mod.rs`) adds what needs the store (does an allocation of this node run the
//! workload, does the node hold the lease).

use uni_core::model::{Node, ReplicaStatus};
use uni_core::store::codec;
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey, WorkloadKey};

/// What a key is, from one node's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClass {
    /// `nodes/{self}`.
    OwnNode,
    /// `allocations/{self}/...`.
    OwnAllocation,
    /// Another node's allocation: its revision may be compared, nothing more.
    OtherAllocation,
    /// `workloads/{ns}/{name}`: readable while one of the node's allocations runs it.
    Workload {
        namespace: String,
        name: String,
    },
    /// `status/{ns}/{name}/{replica}`: writable for the node's own replicas.
    Status {
        namespace: String,
        name: String,
    },
    Other,
}

pub fn classify(node: &str, key: &str) -> KeyClass {
    if NodeKey::new(node).is_ok_and(|k| k.format() == key) {
        return KeyClass::OwnNode;
    }
    if let Ok(k) = AllocationKey::parse(key) {
        return if k.node == node {
            KeyClass::OwnAllocation
        } else {
            KeyClass::OtherAllocation
        };
    }
    if let Ok(k) = WorkloadKey::parse(key) {
        return KeyClass::Workload {
            namespace: k.namespace,
            name: k.name,
        };
    }
    if let Ok(k) = StatusKey::parse(key) {
        return KeyClass::Status {
            namespace: k.namespace,
            name: k.name,
        };
    }
    KeyClass::Other
}

/// Whether a node may range or watch `prefix`: its own node key (results are then narrowed
/// to exactly that key) or its own allocations.
pub fn prefix_allowed(node: &str, prefix: &str) -> bool {
    let own_node = NodeKey::new(node).map(|k| k.format());
    own_node.is_ok_and(|k| k == prefix) || prefix.starts_with(&AllocationKey::node_prefix(node))
}

/// Whether a key a range or watch of an allowed prefix returned may be shown to the node
/// (`nodes/a` is a prefix of `nodes/ab`).
pub fn visible(node: &str, key: &str) -> bool {
    matches!(
        classify(node, key),
        KeyClass::OwnNode | KeyClass::OwnAllocation
    )
}

/// Why a node object may not be written by `node`, if it may not.
pub fn node_write_refusal(node: &str, key: &str, value: &[u8]) -> Option<String> {
    match codec::decode::<Node>(key, value) {
        Ok(n) if n.meta.name == node => None,
        Ok(n) => Some(format!(
            "node {node:?} may not write node {:?}",
            n.meta.name
        )),
        Err(e) => Some(format!("not a node object: {e}")),
    }
}

/// The status a node writes, if it names the node itself.
pub fn own_status(node: &str, key: &str, value: &[u8]) -> Result<ReplicaStatus, String> {
    let s = codec::decode::<ReplicaStatus>(key, value)
        .map_err(|e| format!("not a replica status: {e}"))?;
    if s.node != node {
        return Err(format!(
            "node {node:?} may not report a replica of node {:?}",
            s.node
        ));
    }
    Ok(s)
}

/// Whether a stored status names `node` as the replica's node.
pub fn status_names(node: &str, key: &str, value: &[u8]) -> bool {
    codec::decode::<ReplicaStatus>(key, value).is_ok_and(|s| s.node == node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_reaches_its_own_keys_only() {
        let own = NodeKey::new("n1").unwrap().format();
        let longer = NodeKey::new("n10").unwrap().format();
        assert_eq!(classify("n1", &own), KeyClass::OwnNode);
        assert_eq!(classify("n1", &longer), KeyClass::Other);
        assert!(prefix_allowed("n1", &own));
        assert!(!visible("n1", &longer), "a prefix range must not leak n10");
        let mine = AllocationKey::new("n1", "a").unwrap().format();
        let theirs = AllocationKey::new("n2", "a").unwrap().format();
        assert_eq!(classify("n1", &mine), KeyClass::OwnAllocation);
        assert_eq!(classify("n1", &theirs), KeyClass::OtherAllocation);
        assert!(prefix_allowed("n1", &AllocationKey::node_prefix("n1")));
        assert!(!prefix_allowed("n1", &AllocationKey::node_prefix("n2")));
        assert!(!prefix_allowed("n1", &AllocationKey::prefix()));
        assert!(!prefix_allowed("n1", &NodeKey::prefix()));
        assert!(!prefix_allowed("n1", "/universal/v1/"));
        assert_eq!(
            classify("n1", "/universal/v1/rolebindings/_cluster/x"),
            KeyClass::Other
        );
    }

    #[test]
    fn a_node_writes_only_objects_that_name_it() {
        let key = NodeKey::new("n1").unwrap().format();
        let mut node = Node::default();
        node.meta.name = "n2".into();
        let value = codec::encode(&node).unwrap();
        assert!(node_write_refusal("n1", &key, &value).is_some());
        node.meta.name = "n1".into();
        assert!(node_write_refusal("n1", &key, &codec::encode(&node).unwrap()).is_none());

        let skey = StatusKey::new("ns", "w", 0u32).unwrap().format();
        let status = ReplicaStatus {
            node: "n2".into(),
            ..ReplicaStatus::default()
        };
        let value = codec::encode(&status).unwrap();
        assert!(own_status("n1", &skey, &value).is_err());
        assert!(!status_names("n1", &skey, &value));
        assert!(own_status("n2", &skey, &value).is_ok());
    }
}
