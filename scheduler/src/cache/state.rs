//! The in-memory picture of the cluster that every scheduler replica keeps current from etcd
//! watches: workloads, nodes, allocations, replica statuses, queues, and the placement
//! snapshot derived from nodes and allocations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::model::{Allocation, Node, Queue, ReplicaStatus, ResourceAmounts, Workload};
use uni_core::store::keys::{self, AllocationKey, TypedKey};
use uni_core::store::{codec, EventKind, KeyValue, Revision, WatchEvent};
use uni_core::Result;
use uni_placement::mix::counts::ShapeCounts;
use uni_placement::mix::protected::protected;
use uni_placement::node_state::NodeState;
use uni_placement::typical::default_typical_shapes;
use uni_placement::{
    place_gang, Decision, Mix, Policy, ReplicaRequest, Reserved, Snapshot, Unschedulable,
};

/// A stored object with the store metadata the API and the leader's compares need.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub value: T,
    pub mod_revision: Revision,
    pub lease: i64,
}

/// Maps that grow with the cluster's workloads are B-trees: a hash map's resize moves every
/// entry at once, and at 100,000 allocations that held the lock for hundreds of milliseconds.
///
/// Allocations are indexed once, by the placement snapshot (by id, node and workload); the
/// state adds what only the control plane needs. Everything changes through methods that say
/// what they do, so the tallies (ports, queue usage, the mix) cannot drift from the index.
pub struct State {
    /// Revision of the last applied change.
    revision: Revision,
    workloads: BTreeMap<WorkloadRef, Stored<Workload>>,
    nodes: BTreeMap<String, Stored<Node>>,
    queues: BTreeMap<String, Stored<Queue>>,
    /// Host ports held on each node, with how many allocations hold each (one, unless a
    /// record is stale), so a free one is found without reading the node's allocations.
    ports: HashMap<String, BTreeMap<u16, u32>>,
    /// Nodes whose key disappeared (lease expired or revoked), for the leader to mark NotReady.
    lost_nodes: BTreeMap<String, Node>,
    /// What each queue's allocations hold, for its maximum quota.
    queue_usage: HashMap<String, ResourceAmounts>,
    /// Nodes that are NotReady or draining: the only ones node lifecycle needs to look at.
    troubled_nodes: BTreeSet<String>,
    statuses: BTreeMap<(WorkloadRef, u32), ReplicaStatus>,
    /// Nodes and allocations as placement sees them; the one allocation index.
    snapshot: Snapshot,
    /// The shapes of what holds allocations: the mix placement measures fragmentation against.
    mix: ShapeCounts,
    /// Allocations the leader reserved and is committing; the watch has not confirmed them.
    /// Kept so that a rebuild of the snapshot never forgets a reservation.
    inflight: HashMap<String, Allocation>,
    /// Workloads whose desired and actual state may differ: the scheduling queue's input.
    dirty: BTreeSet<WorkloadRef>,
    /// Capacity appeared (a node joined, grew or freed something): unschedulable work may fit.
    capacity_changed: bool,
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
                    self.dirty.insert(WorkloadRef::of(&alloc));
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

    /// Records an allocation (replacing one with its id) in the index and the tallies.
    pub fn reserve(&mut self, alloc: Allocation) {
        if let Some(old) = self.snapshot.allocation(&alloc.id).cloned() {
            self.tally(&old, false);
        }
        self.snapshot.add_allocation(&alloc);
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
        let alloc = self.snapshot.remove_allocation_id(id)?;
        self.tally(&alloc, false);
        Some(alloc)
    }

    /// Places a gang and reserves every member (or none, if one fits nowhere), the tallies
    /// following what each member replaced.
    pub fn reserve_gang(
        &mut self,
        reqs: &[ReplicaRequest],
        policy: &Policy,
        mix: &Mix,
        make_alloc: impl FnMut(usize, &Decision) -> Allocation,
    ) -> Result<Vec<Reserved>, Unschedulable> {
        let members = place_gang(&mut self.snapshot, reqs, policy, mix, make_alloc)?;
        for m in &members {
            if let Some(old) = &m.replaced {
                self.tally(old, false);
            }
            self.tally(&m.allocation, true);
        }
        Ok(members)
    }

    /// Takes back a gang's reservations, restoring what they replaced.
    pub fn unreserve_gang(&mut self, members: &[Reserved]) {
        for m in members.iter().rev() {
            self.release(&m.allocation.id);
            if let Some(old) = &m.replaced {
                self.reserve(old.clone());
            }
        }
    }

    /// Records a reservation the leader is committing, so a rebuild keeps it until the watch
    /// confirms it.
    pub fn reserve_inflight(&mut self, alloc: Allocation) {
        self.reserve(alloc.clone());
        self.inflight.insert(alloc.id.clone(), alloc);
    }

    /// Forgets the reservations not yet confirmed (a new leader rebuilds from the store).
    pub fn clear_inflight(&mut self) {
        self.inflight.clear();
    }

    pub fn allocation(&self, id: &str) -> Option<&Allocation> {
        self.snapshot.allocation(id)
    }

    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.snapshot.allocations()
    }

    /// The allocations of one workload, in replica order.
    pub fn allocations_of(&self, r: &WorkloadRef) -> Vec<&Allocation> {
        self.snapshot.allocations_of(r).collect()
    }

    /// The allocations on one node (also while the node is unknown).
    pub fn allocations_on(&self, node: &str) -> Vec<&Allocation> {
        self.snapshot.allocations_on(node).collect()
    }

    pub fn has_allocations_on(&self, node: &str) -> bool {
        self.snapshot.has_allocations_on(node)
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Raises the revision to one a listing was read at.
    pub fn listed_at(&mut self, revision: Revision) {
        self.revision = self.revision.max(revision);
    }

    pub fn workload(&self, r: &WorkloadRef) -> Option<&Stored<Workload>> {
        self.workloads.get(r)
    }

    pub fn workloads(&self) -> &BTreeMap<WorkloadRef, Stored<Workload>> {
        &self.workloads
    }

    pub fn node(&self, name: &str) -> Option<&Stored<Node>> {
        self.nodes.get(name)
    }

    pub fn nodes(&self) -> &BTreeMap<String, Stored<Node>> {
        &self.nodes
    }

    pub fn queue(&self, name: &str) -> Option<&Stored<Queue>> {
        self.queues.get(name)
    }

    /// What `queue`'s allocations hold now.
    pub fn queue_usage(&self, queue: &str) -> ResourceAmounts {
        self.queue_usage.get(queue).copied().unwrap_or_default()
    }

    pub fn status(&self, r: &WorkloadRef, replica: u32) -> Option<&ReplicaStatus> {
        self.statuses.get(&(r.clone(), replica))
    }

    /// The replicas of `r` with a status, in order.
    pub fn replicas_with_status(&self, r: &WorkloadRef) -> Vec<u32> {
        self.statuses
            .range((r.clone(), 0)..=(r.clone(), u32::MAX))
            .map(|((_, replica), _)| *replica)
            .collect()
    }

    /// Forgets a replica's status (its replica is gone), until its agent writes again.
    pub fn forget_status(&mut self, r: &WorkloadRef, replica: u32) {
        self.statuses.remove(&(r.clone(), replica));
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The snapshot and the shapes counted, for the mix learner (which keeps the snapshot
    /// counting the hosts of the protected shapes).
    pub fn learning(&mut self) -> (&mut Snapshot, &ShapeCounts) {
        (&mut self.snapshot, &self.mix)
    }

    /// Queues `r` for the next pass.
    pub fn mark_dirty(&mut self, r: WorkloadRef) {
        self.dirty.insert(r);
    }

    /// Queues every workload, as if capacity had appeared (a new leader's first pass).
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.workloads.keys().cloned());
        self.capacity_changed = true;
    }

    /// The queue of workloads to look at, emptied; what is not done goes back with `requeue`.
    pub fn take_dirty(&mut self) -> BTreeSet<WorkloadRef> {
        std::mem::take(&mut self.dirty)
    }

    pub fn requeue(&mut self, rs: impl IntoIterator<Item = WorkloadRef>) {
        self.dirty.extend(rs);
    }

    /// The queue itself, for backoffs that release into it.
    pub fn dirty_mut(&mut self) -> &mut BTreeSet<WorkloadRef> {
        &mut self.dirty
    }

    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Whether capacity appeared since the last call.
    pub fn take_capacity_changed(&mut self) -> bool {
        std::mem::take(&mut self.capacity_changed)
    }

    /// Nodes whose key went since the last call, with their last value.
    pub fn take_lost_nodes(&mut self) -> BTreeMap<String, Node> {
        std::mem::take(&mut self.lost_nodes)
    }

    /// Nodes that are NotReady or draining.
    pub fn troubled_nodes(&self) -> &BTreeSet<String> {
        &self.troubled_nodes
    }
}

fn stored<T>(value: T, kv: &KeyValue) -> Stored<T> {
    Stored {
        value,
        mod_revision: kv.mod_revision,
        lease: kv.lease,
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
        assert_eq!(st.allocations().count(), 0);
    }

    #[test]
    fn a_gang_taken_back_leaves_the_tallies_as_they_were() {
        use uni_core::model::WorkloadRef;
        use uni_placement::node_state::NodeState;

        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        st.snapshot
            .upsert_node(NodeState::new("n1", 8_000, 1 << 34));
        let mut running = alloc("g0", "n1", 30000);
        running.queue = "q".into();
        running.compute_milli = 1_000;
        st.reserve(running.clone());
        let before = (
            st.queue_usage("q"),
            st.mix.total(),
            st.port_taken("n1", 30000),
        );

        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 2_000, 0);
        let policy = Policy::default();
        let members = st
            .reserve_gang(&[req.clone(), req], &policy, &Mix::default(), |i, d| {
                Allocation {
                    node: d.node.clone(),
                    queue: "q".into(),
                    compute_milli: 2_000,
                    ..alloc(&format!("g{i}"), "n1", 0)
                }
            })
            .expect("the gang fits");
        // g0 was replaced by the first member: its port is free, the queue holds the gang.
        assert_eq!(members[0].replaced.as_ref(), Some(&running));
        assert!(!st.port_taken("n1", 30000));
        assert_eq!(st.queue_usage("q").compute_milli, 4_000);
        assert_eq!(st.allocations().count(), 2);

        st.unreserve_gang(&members);
        let after = (
            st.queue_usage("q"),
            st.mix.total(),
            st.port_taken("n1", 30000),
        );
        assert_eq!(after, before);
        assert_eq!(st.allocation("g0"), Some(&running));
        assert_eq!(st.allocations().count(), 1);
    }
}
