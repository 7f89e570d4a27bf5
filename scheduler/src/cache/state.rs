//! The in-memory picture of the cluster that every scheduler replica keeps current from etcd
//! watches: workloads, nodes, allocations, replica statuses, queues, and the placement
//! snapshot derived from nodes and allocations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uni_core::catalog::Catalog;
use uni_core::model::{Allocation, Node, Queue, ReplicaStatus, ResourceAmounts, Workload};
use uni_core::store::keys::{self, AllocationKey, TypedKey};
use uni_core::store::{codec, EventKind, KeyValue, Revision, WatchEvent};
use uni_core::Result;

use uni_core::model::WorkloadRef;
use uni_placement::mix::counts::ShapeCounts;
use uni_placement::mix::protected::protected;
use uni_placement::node_state::NodeState;
use uni_placement::typical::default_typical_shapes;
use uni_placement::Snapshot;

/// A stored object with the store metadata the API and the leader's compares need.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub value: T,
    pub mod_revision: Revision,
    pub lease: i64,
}

/// Maps that grow with the cluster's workloads are B-trees: a hash map's resize moves every
/// entry at once, and at 100,000 allocations that held the lock for hundreds of milliseconds.
pub struct State {
    /// Revision of the last applied change.
    pub revision: Revision,
    pub workloads: BTreeMap<WorkloadRef, Stored<Workload>>,
    pub nodes: BTreeMap<String, Stored<Node>>,
    pub queues: BTreeMap<String, Stored<Queue>>,
    pub allocations: BTreeMap<String, Allocation>,
    /// Allocation ids of each workload, by replica.
    pub by_workload: BTreeMap<WorkloadRef, BTreeSet<(u32, String)>>,
    /// Allocation ids on each node, whether or not the node is known.
    pub by_node: BTreeMap<String, BTreeSet<String>>,
    /// Host ports held on each node, with how many allocations hold each (one, unless a
    /// record is stale), so a free one is found without reading the node's allocations.
    pub ports: HashMap<String, BTreeMap<u16, u32>>,
    /// Nodes whose key disappeared (lease expired or revoked), for the leader to mark NotReady.
    pub lost_nodes: BTreeMap<String, Node>,
    /// What each queue's allocations hold, for its maximum quota.
    pub queue_usage: HashMap<String, ResourceAmounts>,
    /// Nodes that are NotReady or draining: the only ones node lifecycle needs to look at.
    pub troubled_nodes: BTreeSet<String>,
    pub statuses: BTreeMap<(WorkloadRef, u32), ReplicaStatus>,
    pub snapshot: Snapshot,
    /// The shapes of what holds allocations: the mix placement measures fragmentation against.
    pub mix: ShapeCounts,
    /// Allocations the leader reserved and is committing; the watch has not confirmed them.
    /// Kept so that a rebuild of the snapshot never forgets a reservation.
    pub inflight: HashMap<String, Allocation>,
    /// Workloads whose desired and actual state may differ: the scheduling queue's input.
    pub dirty: BTreeSet<WorkloadRef>,
    /// Capacity appeared (a node joined, grew or freed something): unschedulable work may fit.
    pub capacity_changed: bool,
    catalog: Arc<Catalog>,
}

/// What a key under `/universal/v1/` names.
enum Key {
    Workload(WorkloadRef),
    Node(String),
    Queue(String),
    Allocation(String),
    Status(WorkloadRef, u32),
    Other,
}

fn classify(key: &str) -> Key {
    let collection = key
        .strip_prefix(keys::ROOT)
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    match collection {
        "workloads" => keys::WorkloadKey::parse(key).map(|k| {
            Key::Workload(WorkloadRef {
                namespace: k.namespace,
                name: k.name,
            })
        }),
        "nodes" => keys::NodeKey::parse(key).map(|k| Key::Node(k.name)),
        "queues" => keys::QueueKey::parse(key).map(|k| Key::Queue(k.name)),
        "allocations" => AllocationKey::parse(key).map(|k| Key::Allocation(k.id)),
        "status" => keys::StatusKey::parse(key).map(|k| {
            Key::Status(
                WorkloadRef {
                    namespace: k.namespace,
                    name: k.name,
                },
                k.replica,
            )
        }),
        _ => Ok(Key::Other),
    }
    .unwrap_or(Key::Other)
}

/// An empty snapshot counting the hosts of the generic mix's protected shapes (what the
/// leader's learner starts from), so placement reads the counts instead of scanning.
fn tracking_snapshot() -> Snapshot {
    let mut snapshot = Snapshot::new();
    snapshot.track_capability(protected(&default_typical_shapes()));
    snapshot
}

impl State {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            revision: 0,
            workloads: BTreeMap::new(),
            nodes: BTreeMap::new(),
            queues: BTreeMap::new(),
            allocations: BTreeMap::new(),
            by_workload: BTreeMap::new(),
            by_node: BTreeMap::new(),
            ports: HashMap::new(),
            lost_nodes: BTreeMap::new(),
            troubled_nodes: BTreeSet::new(),
            queue_usage: HashMap::new(),
            statuses: BTreeMap::new(),
            snapshot: tracking_snapshot(),
            mix: ShapeCounts::default(),
            inflight: HashMap::new(),
            dirty: BTreeSet::new(),
            capacity_changed: false,
            catalog,
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Starts over from an empty picture (after losing watch history), keeping the leader's
    /// in-flight reservations.
    pub fn reset(&mut self) {
        let inflight = std::mem::take(&mut self.inflight);
        *self = State::new(self.catalog.clone());
        for alloc in inflight.into_values() {
            self.reserve(alloc);
        }
    }

    /// Applies one watch event or listed key. Events older than what is held are ignored,
    /// so a listing and a watch that overlap apply cleanly.
    pub fn apply(&mut self, event: &WatchEvent) -> Result<()> {
        let kv = &event.kv;
        let put = event.kind == EventKind::Put;
        match classify(&kv.key) {
            Key::Workload(r) => {
                if put {
                    if self
                        .workloads
                        .get(&r)
                        .is_some_and(|w| w.mod_revision >= kv.mod_revision)
                    {
                        return Ok(());
                    }
                    let mut w: Workload = codec::decode(&kv.key, &kv.value)?;
                    w.meta.resource_version = kv.mod_revision;
                    self.workloads.insert(r.clone(), stored(w, kv));
                } else {
                    self.workloads.remove(&r);
                }
                self.dirty.insert(r);
            }
            Key::Node(name) => {
                if put {
                    if self
                        .nodes
                        .get(&name)
                        .is_some_and(|n| n.mod_revision >= kv.mod_revision)
                    {
                        return Ok(());
                    }
                    let mut node: Node = codec::decode(&kv.key, &kv.value)?;
                    node.meta.resource_version = kv.mod_revision;
                    self.snapshot
                        .upsert_node(NodeState::from_node(&node, &self.catalog));
                    self.lost_nodes.remove(&name);
                    if node.status.ready && !node.status.draining {
                        self.troubled_nodes.remove(&name);
                    } else {
                        self.troubled_nodes.insert(name.clone());
                    }
                    self.nodes.insert(name, stored(node, kv));
                    self.capacity_changed = true;
                } else {
                    if let Some(gone) = self.nodes.remove(&name) {
                        self.lost_nodes.insert(name.clone(), gone.value);
                    }
                    self.troubled_nodes.remove(&name);
                    self.snapshot.remove_node(&name);
                }
            }
            Key::Queue(name) => {
                if put {
                    let mut q: Queue = codec::decode(&kv.key, &kv.value)?;
                    q.meta.resource_version = kv.mod_revision;
                    self.queues.insert(name, stored(q, kv));
                } else {
                    self.queues.remove(&name);
                }
            }
            Key::Allocation(id) => {
                if put {
                    let alloc: Allocation = codec::decode(&kv.key, &kv.value)?;
                    self.inflight.remove(&id);
                    self.reserve(alloc);
                } else if let Some(alloc) = self.release(&id) {
                    self.dirty.insert(workload_ref(&alloc));
                    self.capacity_changed = true;
                }
            }
            Key::Status(r, replica) => {
                if put {
                    let s: ReplicaStatus = codec::decode(&kv.key, &kv.value)?;
                    self.statuses.insert((r.clone(), replica), s);
                } else {
                    self.statuses.remove(&(r.clone(), replica));
                }
                self.dirty.insert(r);
            }
            Key::Other => {}
        }
        if kv.mod_revision > self.revision {
            self.revision = kv.mod_revision;
        }
        Ok(())
    }

    /// Records an allocation: in the index and in the placement snapshot.
    pub fn reserve(&mut self, alloc: Allocation) {
        self.snapshot.add_allocation(&alloc);
        self.by_workload
            .entry(workload_ref(&alloc))
            .or_default()
            .insert((alloc.replica, alloc.id.clone()));
        self.by_node
            .entry(alloc.node.clone())
            .or_default()
            .insert(alloc.id.clone());
        if let Some(old) = self.allocations.insert(alloc.id.clone(), alloc.clone()) {
            self.tally(&old, false);
        }
        self.tally(&alloc, true);
    }

    /// Counts (or stops counting) what `alloc` holds: its port, its shape in the mix, its
    /// queue's usage.
    fn tally(&mut self, alloc: &Allocation, add: bool) {
        self.hold_port(alloc, add);
        let usage = self.queue_usage.entry(alloc.queue.clone()).or_default();
        if add {
            self.mix.add_allocation(alloc);
            *usage = usage.saturating_add(&alloc.amounts());
        } else {
            self.mix.remove_allocation(alloc);
            *usage = usage.saturating_sub(&alloc.amounts());
        }
    }

    fn hold_port(&mut self, alloc: &Allocation, hold: bool) {
        if alloc.port == 0 {
            return;
        }
        let ports = self.ports.entry(alloc.node.clone()).or_default();
        let count = ports.entry(alloc.port).or_default();
        if hold {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
            if *count == 0 {
                ports.remove(&alloc.port);
            }
        }
        if ports.is_empty() {
            self.ports.remove(&alloc.node);
        }
    }

    /// Whether an allocation on `node` holds `port`.
    pub fn port_taken(&self, node: &str, port: u16) -> bool {
        self.ports.get(node).is_some_and(|p| p.contains_key(&port))
    }

    /// Forgets an allocation; returns it if it was known.
    pub fn release(&mut self, id: &str) -> Option<Allocation> {
        let alloc = self.allocations.remove(id)?;
        self.tally(&alloc, false);
        self.snapshot.remove_allocation(&alloc);
        let r = workload_ref(&alloc);
        if let Some(set) = self.by_workload.get_mut(&r) {
            set.remove(&(alloc.replica, alloc.id.clone()));
            if set.is_empty() {
                self.by_workload.remove(&r);
            }
        }
        if let Some(set) = self.by_node.get_mut(&alloc.node) {
            set.remove(&alloc.id);
            if set.is_empty() {
                self.by_node.remove(&alloc.node);
            }
        }
        Some(alloc)
    }

    /// The allocations of one workload, in replica order.
    pub fn allocations_of(&self, r: &WorkloadRef) -> Vec<&Allocation> {
        self.by_workload
            .get(r)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.allocations.get(id))
            .collect()
    }

    /// The allocations on one node.
    pub fn allocations_on(&self, node: &str) -> Vec<&Allocation> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocations.get(id))
            .collect()
    }

    pub fn workload(&self, r: &WorkloadRef) -> Option<&Stored<Workload>> {
        self.workloads.get(r)
    }
}

fn stored<T>(value: T, kv: &KeyValue) -> Stored<T> {
    Stored {
        value,
        mod_revision: kv.mod_revision,
        lease: kv.lease,
    }
}

pub fn workload_ref(alloc: &Allocation) -> WorkloadRef {
    WorkloadRef {
        namespace: alloc.namespace.clone(),
        name: alloc.workload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, node: &str, port: u16) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "ns".into(),
            workload: "w".into(),
            node: node.into(),
            port,
            ..Allocation::default()
        }
    }

    #[test]
    fn ports_are_held_while_allocations_are() {
        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        st.reserve(alloc("a", "n1", 30000));
        st.reserve(alloc("b", "n1", 30001));
        st.reserve(alloc("c", "n2", 30000));
        assert!(st.port_taken("n1", 30000) && st.port_taken("n1", 30001));
        assert!(!st.port_taken("n2", 30001));
        // The same allocation recorded again with another port: the old one is free.
        st.reserve(alloc("b", "n1", 30002));
        assert!(!st.port_taken("n1", 30001) && st.port_taken("n1", 30002));
        st.release("a");
        assert!(!st.port_taken("n1", 30000) && st.port_taken("n2", 30000));
        st.release("b");
        st.release("c");
        assert!(st.ports.is_empty());
    }
}
