//! The in-memory picture of the cluster that every scheduler replica keeps current from etcd
//! watches: workloads, nodes, allocations, replica statuses, queues, and the placement
//! snapshot derived from nodes and allocations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::model::{
    Allocation, GatewayLoad, Node, Queue, ReplicaStatus, ResourceAmounts, UnixMillis, Workload,
};
use uni_core::store::Revision;
use uni_placement::mix::counts::ShapeCounts;
use uni_placement::mix::protected::protected;
use uni_placement::typical::default_typical_shapes;
use uni_placement::Snapshot;

mod allocations;
mod apply;

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
    /// What each queue's allocations hold, for its quota.
    queue_usage: HashMap<String, ResourceAmounts>,
    /// Allocations told to stop (preempted or resized), with their deadline.
    stopping: BTreeMap<String, UnixMillis>,
    /// How many stopping allocations make room for each workload (`namespace/name`).
    stopping_for: HashMap<String, u32>,
    /// Inference replicas draining before they stop, since when.
    draining: BTreeMap<String, UnixMillis>,
    /// When the watch showed each drain mark: from then on every gateway (fed by the same
    /// watch) can see it, so the drain's settle time counts from here, not from the plan.
    drain_seen: HashMap<String, UnixMillis>,
    /// Each scheduler replica's gateway measurements, by identity.
    loads: BTreeMap<String, GatewayLoad>,
    /// A gateway holds requests for a service with no ready replica: scale it up at once.
    activation: bool,
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
            stopping: BTreeMap::new(),
            stopping_for: HashMap::new(),
            draining: BTreeMap::new(),
            drain_seen: HashMap::new(),
            loads: BTreeMap::new(),
            activation: false,
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

    pub fn queues(&self) -> &BTreeMap<String, Stored<Queue>> {
        &self.queues
    }

    /// What `queue`'s allocations hold now.
    pub fn queue_usage(&self, queue: &str) -> ResourceAmounts {
        self.queue_usage.get(queue).copied().unwrap_or_default()
    }

    /// What every queue's allocations hold now.
    pub fn queue_usages(&self) -> impl Iterator<Item = (&str, ResourceAmounts)> {
        self.queue_usage.iter().map(|(q, u)| (q.as_str(), *u))
    }

    /// Allocations told to stop, with their deadlines.
    pub fn stopping(&self) -> &BTreeMap<String, UnixMillis> {
        &self.stopping
    }

    /// Inference replicas draining, since when.
    pub fn draining(&self) -> &BTreeMap<String, UnixMillis> {
        &self.draining
    }

    /// When the store confirmed that allocation `id` drains (`None`: not yet).
    pub fn drain_seen(&self, id: &str) -> Option<UnixMillis> {
        self.drain_seen.get(id).copied()
    }

    /// The gateways' measurements, by scheduler replica.
    pub fn loads(&self) -> &BTreeMap<String, GatewayLoad> {
        &self.loads
    }

    /// Whether a gateway began holding requests since the last call.
    pub fn take_activation(&mut self) -> bool {
        std::mem::take(&mut self.activation)
    }

    /// Whether allocations are stopping to make room for `workload` (`namespace/name`).
    pub fn is_nominated(&self, workload: &str) -> bool {
        self.stopping_for.contains_key(workload)
    }

    /// The workloads stopping allocations make room for.
    pub fn nominated(&self) -> impl Iterator<Item = &str> {
        self.stopping_for.keys().map(String::as_str)
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
