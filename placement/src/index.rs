//! The snapshot's index: schedulable nodes grouped by (class, device models), each group
//! ordered by free capacity in every primary dimension. A query walks only the groups whose
//! class and models can serve it, and in each only the nodes with enough free capacity, in
//! ascending order (tightest fit first). Equally tight accelerator nodes come in a fixed order,
//! or with the most free compute first (for when compute is what the cluster runs out of); the
//! index keeps the free compute and accelerator capacity of the accelerator nodes to tell.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::node_state::{DeviceState, NodeState};

/// Node id: a slot in the snapshot.
pub(crate) type NodeId = u32;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupKey {
    class: String,
    /// Distinct canonical device models, sorted, joined by ','; empty for CPU nodes.
    models: String,
}

impl GroupKey {
    pub(crate) fn of(node: &NodeState) -> Self {
        let mut models: Vec<&str> = node.devices.iter().map(|d| d.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        Self {
            class: node.class.clone(),
            models: models.join(","),
        }
    }
}

/// A node's position in its group's orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keys {
    pub compute: u64,
    pub whole: u32,
    pub frac: u32,
    /// All free accelerator capacity, in thousandths.
    pub milli: u64,
}

impl Keys {
    pub(crate) fn of(node: &NodeState) -> Self {
        Self {
            compute: node.free_compute_milli(),
            whole: node.whole_free_devices(),
            frac: node.max_free_milli(),
            milli: node.free_device_milli(),
        }
    }
}

/// Where a node sits in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub group: GroupKey,
    pub keys: Keys,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub class: String,
    /// Distinct (canonical, raw) device models seen in the group.
    pub models: Vec<(String, String)>,
    /// Largest device memory and TFLOPS ever seen in the group: a lower bound on the share a
    /// derived fraction needs (never lowered, so the bound stays safe).
    pub max_device_memory: u64,
    pub max_device_tflops: f64,
    pub by_compute: BTreeSet<(u64, NodeId)>,
    pub by_whole: BTreeSet<(u32, NodeId)>,
    pub by_frac: BTreeSet<(u32, NodeId)>,
    /// As `by_whole` and `by_frac`, equals with the most free compute first.
    pub by_whole_compute: BTreeSet<(u32, Reverse<u64>, NodeId)>,
    pub by_frac_compute: BTreeSet<(u32, Reverse<u64>, NodeId)>,
}

impl Group {
    fn insert(&mut self, id: NodeId, keys: Keys) {
        self.by_compute.insert((keys.compute, id));
        self.by_whole.insert((keys.whole, id));
        self.by_frac.insert((keys.frac, id));
        if !self.models.is_empty() {
            let compute = Reverse(keys.compute);
            self.by_whole_compute.insert((keys.whole, compute, id));
            self.by_frac_compute.insert((keys.frac, compute, id));
        }
    }

    fn remove(&mut self, id: NodeId, keys: Keys) {
        self.by_compute.remove(&(keys.compute, id));
        self.by_whole.remove(&(keys.whole, id));
        self.by_frac.remove(&(keys.frac, id));
        let compute = Reverse(keys.compute);
        self.by_whole_compute.remove(&(keys.whole, compute, id));
        self.by_frac_compute.remove(&(keys.frac, compute, id));
    }

    pub(crate) fn len(&self) -> usize {
        self.by_compute.len()
    }

    /// A healthy device with the group's largest memory and TFLOPS: if a request does not fit
    /// on it, it fits on no device of the group.
    pub(crate) fn largest_device(&self) -> DeviceState {
        DeviceState {
            memory_bytes: self.max_device_memory,
            bf16_tflops: self.max_device_tflops,
            healthy: true,
            ..DeviceState::default()
        }
    }

    /// Nodes with at least `least` whole free devices, fewest first; equals in a fixed order,
    /// or with the most free compute first.
    pub(crate) fn by_whole_from(
        &self,
        least: u32,
        compute_first: bool,
    ) -> Box<dyn Iterator<Item = NodeId> + '_> {
        tight_from(&self.by_whole, &self.by_whole_compute, least, compute_first)
    }

    /// Nodes with a device at least `least` thousandths free, least first; equals as in
    /// `by_whole_from`.
    pub(crate) fn by_frac_from(
        &self,
        least: u32,
        compute_first: bool,
    ) -> Box<dyn Iterator<Item = NodeId> + '_> {
        tight_from(&self.by_frac, &self.by_frac_compute, least, compute_first)
    }
}

/// The nodes keyed at least `least`, in `plain`'s order or `by_compute`'s.
fn tight_from<'a>(
    plain: &'a BTreeSet<(u32, NodeId)>,
    by_compute: &'a BTreeSet<(u32, Reverse<u64>, NodeId)>,
    least: u32,
    compute_first: bool,
) -> Box<dyn Iterator<Item = NodeId> + 'a> {
    if compute_first {
        let from = (least, Reverse(u64::MAX), 0);
        Box::new(by_compute.range(from..).map(|e| e.2))
    } else {
        Box::new(plain.range((least, 0)..).map(|e| e.1))
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    groups: BTreeMap<GroupKey, Group>,
    /// Free compute and accelerator thousandths over the indexed accelerator nodes.
    accelerator_nodes_free: (u64, u64),
}

impl Index {
    /// Indexes `node` if it is schedulable; returns where it went.
    pub(crate) fn insert(&mut self, id: NodeId, node: &NodeState) -> Option<Entry> {
        if !node.schedulable() {
            return None;
        }
        let entry = Entry {
            group: GroupKey::of(node),
            keys: Keys::of(node),
        };
        let group = self.groups.entry(entry.group.clone()).or_default();
        if group.len() == 0 {
            group.class = node.class.clone();
        }
        for d in &node.devices {
            if !group
                .models
                .iter()
                .any(|(m, raw)| *m == d.model && *raw == d.raw_model)
            {
                group.models.push((d.model.clone(), d.raw_model.clone()));
            }
            group.max_device_memory = group.max_device_memory.max(d.memory_bytes);
            group.max_device_tflops = group.max_device_tflops.max(d.bf16_tflops);
        }
        group.insert(id, entry.keys);
        self.count(&entry, true);
        Some(entry)
    }

    /// Adds (or takes away) an accelerator node's free capacity to the totals.
    fn count(&mut self, entry: &Entry, add: bool) {
        if entry.group.models.is_empty() {
            return;
        }
        let (compute, milli) = &mut self.accelerator_nodes_free;
        if add {
            *compute += entry.keys.compute;
            *milli += entry.keys.milli;
        } else {
            *compute -= entry.keys.compute;
            *milli -= entry.keys.milli;
        }
    }

    /// Whether the accelerator nodes have less free compute per free accelerator thousandth
    /// than `need`: compute, not accelerators, is what runs out.
    pub(crate) fn compute_scarce(&self, need: f64) -> bool {
        let (compute, milli) = self.accelerator_nodes_free;
        milli > 0 && (compute as f64) < need * milli as f64
    }

    pub(crate) fn remove(&mut self, id: NodeId, entry: &Entry) {
        self.count(entry, false);
        if let Some(group) = self.groups.get_mut(&entry.group) {
            group.remove(id, entry.keys);
            if group.len() == 0 {
                self.groups.remove(&entry.group);
            }
        }
    }

    /// Moves `id` within its group after its usage changed.
    pub(crate) fn update(&mut self, id: NodeId, entry: &mut Entry, node: &NodeState) {
        let keys = Keys::of(node);
        if keys == entry.keys {
            return;
        }
        self.count(entry, false);
        if let Some(group) = self.groups.get_mut(&entry.group) {
            group.remove(id, entry.keys);
            group.insert(id, keys);
        }
        entry.keys = keys;
        self.count(entry, true);
    }

    /// Free compute and accelerator thousandths over the indexed accelerator nodes.
    #[cfg(test)]
    pub(crate) fn accelerator_nodes_free(&self) -> (u64, u64) {
        self.accelerator_nodes_free
    }

    pub(crate) fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Every (group, node, keys) triple, sorted: for comparing two indexes in tests.
    #[cfg(test)]
    pub(crate) fn members(&self) -> Vec<(GroupKey, NodeId, Keys)> {
        let mut out = Vec::new();
        for (key, group) in &self.groups {
            for &(compute, id) in &group.by_compute {
                let whole = group.by_whole.iter().find(|(_, i)| *i == id).map(|w| w.0);
                let frac = group.by_frac.iter().find(|(_, i)| *i == id).map(|f| f.0);
                out.push((
                    key.clone(),
                    id,
                    Keys {
                        compute,
                        whole: whole.unwrap_or(u32::MAX),
                        frac: frac.unwrap_or(u32::MAX),
                        milli: 0,
                    },
                ));
            }
            assert_eq!(group.by_whole.len(), group.len());
            assert_eq!(group.by_frac.len(), group.len());
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_state::DeviceState;

    #[test]
    fn groups_by_class_and_models_and_orders_by_free() {
        let mut index = Index::default();
        let mut a = NodeState::new("a", 8000, 1 << 30);
        a.class = "gpu".into();
        a.devices = vec![DeviceState::new(0, "m", 1 << 30, 1.0, 1.0)];
        let mut b = a.clone();
        b.name = "b".into();
        b.used_compute_milli = 6000;
        let ea = index.insert(0, &a).expect("indexed");
        let mut eb = index.insert(1, &b).expect("indexed");
        assert_eq!(ea.group, eb.group);
        let group = index.groups().next().expect("group");
        assert_eq!(
            group.by_compute.iter().map(|k| k.1).collect::<Vec<_>>(),
            vec![1, 0]
        );
        b.used_compute_milli = 0;
        b.devices[0].used_milli = 1000;
        index.update(1, &mut eb, &b);
        let group = index.groups().next().expect("group");
        assert_eq!(group.by_whole.iter().next(), Some(&(0, 1)));
        index.remove(0, &ea);
        index.remove(1, &eb);
        assert_eq!(index.groups().count(), 0);

        a.cordoned = true;
        assert!(index.insert(0, &a).is_none());
    }

    #[test]
    fn equally_tight_nodes_with_most_compute_first_and_totals() {
        let mut index = Index::default();
        let gpu_node = |name: &str, compute: u64| {
            let mut n = NodeState::new(name, compute, 1 << 30);
            n.devices = vec![DeviceState::new(0, "m", 1 << 30, 1.0, 1.0)];
            n
        };
        let mut entries: Vec<Entry> = [("a", 4000), ("b", 64_000), ("c", 8000)]
            .iter()
            .enumerate()
            .map(|(id, (name, compute))| {
                index
                    .insert(id as NodeId, &gpu_node(name, *compute))
                    .expect("indexed")
            })
            .collect();
        index.insert(3, &NodeState::new("cpu", 96_000, 1 << 30));
        let group = index
            .groups()
            .find(|g| !g.models.is_empty())
            .expect("group");
        let order = |first| group.by_whole_from(1, first).collect::<Vec<_>>();
        assert_eq!(order(false), vec![0, 1, 2]);
        assert_eq!(order(true), vec![1, 2, 0]);
        assert_eq!(
            group.by_frac_from(1000, true).collect::<Vec<_>>(),
            [1, 2, 0]
        );
        // The CPU node counts for neither total.
        assert_eq!(index.accelerator_nodes_free(), (76_000, 3000));
        // 25.3 CPUs per device free: scarce for a mix asking 30, not for one asking 20.
        assert!(index.compute_scarce(30.0));
        assert!(!index.compute_scarce(20.0));

        let mut b = gpu_node("b", 64_000);
        b.devices[0].used_milli = 1000;
        b.used_compute_milli = 60_000;
        index.update(1, &mut entries[1], &b);
        assert_eq!(index.accelerator_nodes_free(), (16_000, 2000));
        let group = index
            .groups()
            .find(|g| !g.models.is_empty())
            .expect("group");
        assert_eq!(group.by_whole_from(1, true).collect::<Vec<_>>(), vec![2, 0]);
        index.remove(0, &entries[0]);
        assert_eq!(index.accelerator_nodes_free(), (12_000, 1000));
    }
}
