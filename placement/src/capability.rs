//! How many schedulable nodes can host each protected shape (`score::scarcity`), kept current
//! by the snapshot on every node change, so a placement reads the counts instead of scanning
//! the cluster.

use super::index::NodeId;
use super::node_state::NodeState;
use crate::mix::protected::MAX_PROTECTED;
use crate::score::scarcity;
use crate::typical::TypicalShape;

#[derive(Debug, Clone, Default)]
pub(crate) struct Capability {
    shapes: Vec<TypicalShape>,
    counts: Vec<u32>,
    /// Each node's mask (bit `i`: hosts `shapes[i]`), by node id.
    masks: Vec<u64>,
}

impl Capability {
    /// Tracks `shapes` over `nodes` (the schedulable ones), forgetting earlier counts.
    pub fn track<'a>(
        &mut self,
        shapes: Vec<TypicalShape>,
        nodes: impl Iterator<Item = (NodeId, &'a NodeState)>,
    ) {
        self.counts = vec![0; shapes.len().min(MAX_PROTECTED)];
        self.shapes = shapes;
        self.masks.clear();
        for (id, node) in nodes {
            self.set(id, Some(node));
        }
    }

    /// Node `id` is now `node` (`None`: gone or not schedulable).
    pub fn set(&mut self, id: NodeId, node: Option<&NodeState>) {
        if self.shapes.is_empty() {
            return;
        }
        let mask = node.map_or(0, |n| scarcity::capable(n, &self.shapes));
        let i = id as usize;
        if self.masks.len() <= i {
            self.masks.resize(i + 1, 0);
        }
        let old = std::mem::replace(&mut self.masks[i], mask);
        for (bit, count) in self.counts.iter_mut().enumerate() {
            let (was, is) = (old >> bit & 1, mask >> bit & 1);
            *count = *count + is as u32 - was as u32;
        }
    }

    /// The tracked shapes, if any.
    #[cfg(test)]
    pub fn shapes(&self) -> Option<&[TypicalShape]> {
        (!self.shapes.is_empty()).then_some(&self.shapes[..])
    }

    /// The counts of the tracked shapes.
    pub fn into_counts(self) -> Vec<u32> {
        self.counts
    }

    /// The counts, when `shapes` are the tracked shapes.
    pub fn counts(&self, shapes: &[TypicalShape]) -> Option<&[u32]> {
        (self.shapes == shapes).then_some(&self.counts[..])
    }
}
