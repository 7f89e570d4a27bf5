//! Node lifecycle, run by the leader in every pass: a node whose lease expired is written back
//! as NotReady (so users see it); after the grace period its allocations are evicted and the
//! replicas placed elsewhere; a draining node is emptied at once.

use std::time::{Duration, Instant};

use tracing::warn;
use uni_core::model::WorkloadRef;
use uni_core::model::{
    condition::{find_condition, set_condition, types},
    Condition, ConditionStatus, EventType, Node, ObjectRef, UnixMillis,
};
use uni_core::store::keys::{NodeKey, TypedKey};
use uni_core::store::{codec, Compare, Txn, TxnOp};

use super::pass::Pass;
use crate::cache::State;

/// Returns when a NotReady node's grace period ends next, if one is pending.
pub fn run(pass: &mut Pass<'_>, st: &mut State, now: Instant) -> Option<Instant> {
    mark_lost_nodes(pass, st);
    let grace = pass.node_grace;
    let mut wake: Option<Instant> = None;
    let mut evict = Vec::new();
    for name in st.troubled_nodes() {
        let Some(node) = st.node(name).map(|n| &n.value) else {
            continue;
        };
        if !st.has_allocations_on(name) {
            continue;
        }
        if node.status.draining {
            evict.push((name.clone(), "Drained", "node is draining".to_string()));
        } else if !node.status.ready {
            let since = not_ready_since(node);
            let waited = Duration::from_millis(pass.now.millis_since(since));
            if waited >= grace {
                evict.push((
                    name.clone(),
                    "NodeLost",
                    format!("node {name} not ready for {}s", waited.as_secs()),
                ));
            } else {
                let due = now + (grace - waited);
                wake = Some(wake.map_or(due, |w| w.min(due)));
            }
        }
    }
    for (node, reason, message) in evict {
        evict_node(pass, st, &node, reason, &message);
    }
    wake
}

fn not_ready_since(node: &Node) -> UnixMillis {
    find_condition(&node.status.conditions, types::READY)
        .filter(|c| c.status != ConditionStatus::True)
        .map_or(node.status.last_heartbeat, |c| c.last_transition)
}

/// Writes each node whose key vanished back without a lease, NotReady. The write only
/// happens while the key is absent, so an agent that re-registered first wins.
fn mark_lost_nodes(pass: &mut Pass<'_>, st: &mut State) {
    for (name, mut node) in st.take_lost_nodes() {
        if st.node(&name).is_some() {
            continue;
        }
        node.status.ready = false;
        set_condition(
            &mut node.status.conditions,
            Condition::new(
                types::READY,
                ConditionStatus::False,
                "NodeLost",
                "the agent stopped renewing its lease",
            ),
            pass.now,
        );
        let key = match NodeKey::new(name.clone()) {
            Ok(k) => k.format(),
            Err(e) => {
                warn!(node = %name, error = %e, "lost node not marked NotReady: no valid key");
                continue;
            }
        };
        let bytes = match codec::encode(&node) {
            Ok(b) => b,
            Err(e) => {
                warn!(node = %name, error = %e, "lost node not marked NotReady: cannot encode it");
                continue;
            }
        };
        pass.plan.singles.push(
            Txn::new()
                .when([Compare::absent(key.clone())])
                .and_then([TxnOp::put(key, bytes)]),
        );
        pass.event(
            ObjectRef {
                kind: "Node".into(),
                name: name.clone(),
                ..ObjectRef::default()
            },
            EventType::Warning,
            "NodeNotReady",
            format!("node {name} stopped renewing its lease"),
        );
    }
}

fn evict_node(pass: &mut Pass<'_>, st: &mut State, node: &str, reason: &str, message: &str) {
    let ids: Vec<String> = st
        .allocations_on(node)
        .iter()
        .map(|a| a.id.clone())
        .collect();
    for id in ids {
        let Some(alloc) = st.release(&id) else {
            continue;
        };
        let r = WorkloadRef::of(&alloc);
        st.mark_dirty(r.clone());
        pass.metrics.evictions.with_label_values(&[reason]).inc();
        pass.event(
            ObjectRef {
                kind: "Workload".into(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: String::new(),
            },
            EventType::Warning,
            "Evicted",
            format!("replica {} evicted from {node}: {message}", alloc.replica),
        );
        pass.plan.deletes.push(alloc);
    }
}
