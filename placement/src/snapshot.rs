//! The in-memory picture placement decides from: nodes, and usage derived ONLY from
//! allocations, with an index kept current on every change (see `index`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use uni_core::model::{Allocation, WorkloadRef};

use super::capability::Capability;
use super::index::{Entry, Index, NodeId};
use crate::node_state::NodeState;
use crate::typical::TypicalShape;

#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub node: NodeState,
    /// `None` while the node is not schedulable (not indexed).
    pub entry: Option<Entry>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    slots: Vec<Option<Slot>>,
    free_slots: Vec<NodeId>,
    ids: HashMap<String, NodeId>,
    index: Index,
    /// Every known allocation by id, including those on nodes not (yet) in the snapshot.
    // B-trees, not hash maps: no resize moves every allocation at once (see `cache::State`).
    allocations: BTreeMap<String, Allocation>,
    by_node: BTreeMap<String, BTreeSet<String>>,
    /// Allocation ids of each workload, in replica order.
    by_workload: BTreeMap<WorkloadRef, BTreeSet<(u32, String)>>,
    capability: Capability,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a node. The node's own usage fields are ignored: usage is derived from
    /// the allocations on it, so an update keeps it.
    pub fn upsert_node(&mut self, mut node: NodeState) {
        node.clear_usage();
        if let Some(ids) = self.by_node.get(&node.name) {
            for alloc in ids.iter().filter_map(|id| self.allocations.get(id)) {
                node.apply(alloc, true);
            }
        }
        let id = match self.ids.get(&node.name) {
            Some(&id) => {
                if let Some(entry) = self.slot(id).and_then(|s| s.entry.clone()) {
                    self.index.remove(id, &entry);
                }
                id
            }
            None => {
                let id = match self.free_slots.pop() {
                    Some(id) => id,
                    None => {
                        self.slots.push(None);
                        (self.slots.len() - 1) as NodeId
                    }
                };
                self.ids.insert(node.name.clone(), id);
                id
            }
        };
        let entry = self.index.insert(id, &node);
        self.capability.set(id, entry.is_some().then_some(&node));
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = Some(Slot { node, entry });
        }
    }

    /// Forgets a node; allocations on it are remembered for when it comes back.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeState> {
        let id = self.ids.remove(name)?;
        let slot = self.slots.get_mut(id as usize)?.take()?;
        if let Some(entry) = &slot.entry {
            self.index.remove(id, entry);
        }
        self.capability.set(id, None);
        self.free_slots.push(id);
        Some(slot.node)
    }

    /// Records an allocation (idempotent by id; a changed allocation replaces the old one).
    pub fn add_allocation(&mut self, alloc: &Allocation) {
        if let Some(old) = self.allocations.get(&alloc.id) {
            if old == alloc {
                return;
            }
            self.remove_allocation_id(&alloc.id);
        }
        self.apply_to_node(alloc, true);
        self.by_node
            .entry(alloc.node.clone())
            .or_default()
            .insert(alloc.id.clone());
        self.by_workload
            .entry(WorkloadRef::of(alloc))
            .or_default()
            .insert((alloc.replica, alloc.id.clone()));
        self.allocations.insert(alloc.id.clone(), alloc.clone());
    }

    /// Forgets the allocation with `alloc`'s id (what is subtracted is what was recorded).
    pub fn remove_allocation(&mut self, alloc: &Allocation) {
        self.remove_allocation_id(&alloc.id);
    }

    pub fn remove_allocation_id(&mut self, id: &str) -> Option<Allocation> {
        let alloc = self.allocations.remove(id)?;
        self.apply_to_node(&alloc, false);
        if let Some(ids) = self.by_node.get_mut(&alloc.node) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_node.remove(&alloc.node);
            }
        }
        let workload = WorkloadRef::of(&alloc);
        if let Some(ids) = self.by_workload.get_mut(&workload) {
            ids.remove(&(alloc.replica, alloc.id.clone()));
            if ids.is_empty() {
                self.by_workload.remove(&workload);
            }
        }
        Some(alloc)
    }

    fn apply_to_node(&mut self, alloc: &Allocation, add: bool) {
        let Some(&id) = self.ids.get(&alloc.node) else {
            return;
        };
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            slot.node.apply(alloc, add);
            if let Some(entry) = &mut slot.entry {
                self.index.update(id, entry, &slot.node);
                self.capability.set(id, Some(&slot.node));
            }
        }
    }

    /// Keeps count, from now on, of the schedulable nodes able to host each of `shapes` (a
    /// policy's protected shapes), so `capable_counts` need not scan.
    pub fn track_capability(&mut self, shapes: Vec<TypicalShape>) {
        self.capability = self.count_capability(shapes);
    }

    /// The schedulable nodes able to host each of `shapes`, counted now.
    fn count_capability(&self, shapes: Vec<TypicalShape>) -> Capability {
        let nodes = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.as_ref().map(|s| (id as NodeId, s)))
            .filter(|(_, s)| s.entry.is_some())
            .map(|(id, s)| (id, &s.node));
        let mut capability = Capability::default();
        capability.track(shapes, nodes);
        capability
    }

    /// Whether `shapes` are the shapes whose hosts are counted.
    pub fn tracks(&self, shapes: &[TypicalShape]) -> bool {
        self.capability.counts(shapes).is_some()
    }

    /// How many schedulable nodes can host each of `shapes` now: tracked counts when these are
    /// the tracked shapes, else counted here.
    pub fn capable_counts(&self, shapes: &[TypicalShape]) -> Cow<'_, [u32]> {
        if let Some(counts) = self.capability.counts(shapes) {
            return Cow::Borrowed(counts);
        }
        Cow::Owned(self.count_capability(shapes.to_vec()).into_counts())
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.ids
            .get(name)
            .and_then(|&id| self.slot(id))
            .map(|s| &s.node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeState> {
        self.slots.iter().flatten().map(|s| &s.node)
    }

    /// Nodes in the snapshot.
    /// What the schedulable nodes have in all: compute, memory, healthy devices and their
    /// memory. The fleet queue shares are measured against.
    pub fn capacity(&self) -> uni_core::model::ResourceAmounts {
        let mut total = uni_core::model::ResourceAmounts::ZERO;
        for n in self.nodes().filter(|n| n.schedulable()) {
            total.compute_milli += n.compute_milli;
            total.memory_bytes += n.memory_bytes;
            for d in n.devices.iter().filter(|d| d.healthy) {
                total.device_milli += u64::from(uni_core::units::MILLI_PER_DEVICE);
                total.device_memory_bytes += d.memory_bytes;
            }
        }
        total
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn allocation(&self, id: &str) -> Option<&Allocation> {
        self.allocations.get(id)
    }

    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.allocations.values()
    }

    /// Allocations of one workload, in replica order.
    pub fn allocations_of(&self, workload: &WorkloadRef) -> impl Iterator<Item = &Allocation> {
        self.by_workload
            .get(workload)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.allocations.get(id))
    }

    /// Allocations recorded for nodes the snapshot does not hold (yet).
    pub fn allocations_off_nodes(&self) -> impl Iterator<Item = &Allocation> {
        self.by_node
            .iter()
            .filter(|(node, _)| !self.ids.contains_key(*node))
            .flat_map(|(_, ids)| ids.iter().filter_map(|id| self.allocations.get(id)))
    }

    /// Whether an allocation is recorded for a node (also while the node is absent).
    pub fn has_allocations_on(&self, node: &str) -> bool {
        self.by_node.contains_key(node)
    }

    /// Allocations recorded for a node (also while the node is absent), by id.
    pub fn allocations_on(&self, node: &str) -> impl Iterator<Item = &Allocation> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocations.get(id))
    }

    /// Replicas of `workload` anywhere.
    pub fn replicas_of(&self, workload: &WorkloadRef) -> usize {
        self.by_workload.get(workload).map_or(0, BTreeSet::len)
    }

    /// Replicas of `workload` on `node`.
    pub fn replicas_on(&self, node: &str, workload: &WorkloadRef) -> u32 {
        self.node(node)
            .and_then(|n| n.replicas.get(workload).copied())
            .unwrap_or(0)
    }

    pub(crate) fn slot(&self, id: NodeId) -> Option<&Slot> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// Every node with its id.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (NodeId, &NodeState)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as NodeId, &s.node)))
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// Checks the incremental state against one rebuilt from scratch: the index, and usage
    /// derived from allocations.
    #[cfg(test)]
    pub(crate) fn check_consistency(&self) -> Result<(), String> {
        let mut fresh = Snapshot::new();
        for node in self.nodes() {
            fresh.upsert_node(node.clone());
        }
        for alloc in self.allocations() {
            fresh.add_allocation(alloc);
        }
        for node in self.nodes() {
            let rebuilt = fresh.node(&node.name).ok_or("node lost")?;
            if rebuilt != node {
                return Err(format!(
                    "usage of {} drifted:\n{node:?}\n{rebuilt:?}",
                    node.name
                ));
            }
        }
        // Ids differ between the two snapshots: compare by name.
        let named = |s: &Snapshot| {
            let mut m: Vec<_> = s
                .index
                .members()
                .into_iter()
                .map(|(g, id, k)| {
                    let name = s.slot(id).map(|s| s.node.name.clone()).unwrap_or_default();
                    (g, name, k.compute, k.whole, k.frac)
                })
                .collect();
            m.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            m
        };
        let (ours, theirs) = (named(self), named(&fresh));
        if ours != theirs {
            return Err(format!("index drifted:\n{ours:?}\n{theirs:?}"));
        }
        if self.index.accelerator_nodes_free() != fresh.index.accelerator_nodes_free() {
            return Err(format!(
                "free accelerator-node totals drifted: {:?} vs {:?}",
                self.index.accelerator_nodes_free(),
                fresh.index.accelerator_nodes_free()
            ));
        }
        let schedulable = self.nodes().filter(|n| n.schedulable()).count();
        if ours.len() != schedulable {
            return Err(format!("{} indexed, {schedulable} schedulable", ours.len()));
        }
        if let Some(tracked) = self.capability.shapes() {
            let counted = fresh.capable_counts(tracked);
            if self.capable_counts(tracked) != counted {
                return Err(format!(
                    "capability counts drifted: {:?} vs {counted:?}",
                    self.capable_counts(tracked)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::DeviceBinding;
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;

    fn gpu_node(name: &str) -> NodeState {
        NodeState {
            devices: vec![
                DeviceState::new(0, "m", 16 * GIB, 100.0, 1.0),
                DeviceState::new(1, "m", 16 * GIB, 100.0, 1.0),
            ],
            ..NodeState::new(name, 8000, 64 * GIB)
        }
    }

    fn alloc(id: &str, node: &str, share: u32) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "ns".into(),
            workload: "w".into(),
            node: node.into(),
            compute_milli: 1000,
            memory_bytes: GIB,
            devices: vec![DeviceBinding {
                index: 1,
                uuid: "dev-1".into(),
                share_milli: share,
                memory_bytes: 2 * GIB,
            }],
            ..Allocation::default()
        }
    }

    #[test]
    fn usage_comes_from_allocations_and_survives_node_updates() {
        let mut s = Snapshot::new();
        s.upsert_node(gpu_node("a"));
        let a1 = alloc("a1", "a", 500);
        s.add_allocation(&a1);
        s.add_allocation(&a1);
        let n = s.node("a").expect("node");
        assert_eq!(n.used_compute_milli, 1000);
        assert_eq!(n.devices[1].used_milli, 500);
        assert_eq!(n.devices[1].used_memory_bytes, 2 * GIB);
        assert_eq!(s.replicas_on("a", &WorkloadRef::new("ns", "w")), 1);

        // An update (say the agent re-reported) keeps usage; its own usage fields are ignored.
        let mut update = gpu_node("a");
        update.labels.insert("zone".into(), "x".into());
        update.used_compute_milli = 7777;
        s.upsert_node(update);
        let n = s.node("a").expect("node");
        assert_eq!(n.used_compute_milli, 1000);
        assert_eq!(n.devices[1].used_milli, 500);
        assert_eq!(n.labels.get("zone").map(String::as_str), Some("x"));

        // A changed allocation with the same id replaces the old one.
        s.add_allocation(&alloc("a1", "a", 300));
        assert_eq!(s.node("a").expect("node").devices[1].used_milli, 300);
        s.remove_allocation(&a1);
        s.remove_allocation(&a1);
        let n = s.node("a").expect("node");
        assert_eq!((n.used_compute_milli, n.devices[1].used_milli), (0, 0));
        assert!(n.replicas.is_empty());
        s.check_consistency().expect("consistent");
    }

    #[test]
    fn allocations_wait_for_their_node() {
        let mut s = Snapshot::new();
        s.add_allocation(&alloc("x", "late", 1000));
        assert!(s.node("late").is_none());
        assert_eq!(s.replicas_of(&WorkloadRef::new("ns", "w")), 1);
        s.upsert_node(gpu_node("late"));
        assert_eq!(s.node("late").expect("node").devices[1].used_milli, 1000);
        assert_eq!(s.node("late").expect("node").whole_free_devices(), 1);
        let removed = s.remove_node("late").expect("removed");
        assert_eq!(removed.name, "late");
        assert_eq!(s.len(), 0);
        assert_eq!(s.allocations_on("late").count(), 1);
        s.upsert_node(gpu_node("late"));
        assert_eq!(s.node("late").expect("node").used_compute_milli, 1000);
        assert_eq!(s.allocations_of(&WorkloadRef::new("ns", "w")).count(), 1);
        s.check_consistency().expect("consistent");
    }
}
