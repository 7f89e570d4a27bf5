//! The snapshot's index: schedulable nodes grouped by (class, device models), each group
//! ordered by free capacity in every primary dimension. A query walks only the groups whose
//! class and models can serve it, and in each only the nodes with enough free capacity, in
//! ascending order (tightest fit first).

use std::collections::{BTreeMap, BTreeSet};

use super::node_state::NodeState;

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
}

impl Keys {
    pub(crate) fn of(node: &NodeState) -> Self {
        Self {
            compute: node.free_compute_milli(),
            whole: node.whole_free_devices(),
            frac: node.max_free_milli(),
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
}

impl Group {
    fn insert(&mut self, id: NodeId, keys: Keys) {
        self.by_compute.insert((keys.compute, id));
        self.by_whole.insert((keys.whole, id));
        self.by_frac.insert((keys.frac, id));
    }

    fn remove(&mut self, id: NodeId, keys: Keys) {
        self.by_compute.remove(&(keys.compute, id));
        self.by_whole.remove(&(keys.whole, id));
        self.by_frac.remove(&(keys.frac, id));
    }

    pub(crate) fn len(&self) -> usize {
        self.by_compute.len()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    groups: BTreeMap<GroupKey, Group>,
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
        Some(entry)
    }

    pub(crate) fn remove(&mut self, id: NodeId, entry: &Entry) {
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
        if let Some(group) = self.groups.get_mut(&entry.group) {
            group.remove(id, entry.keys);
            group.insert(id, keys);
        }
        entry.keys = keys;
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
    use crate::placement::node_state::DeviceState;

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
}
