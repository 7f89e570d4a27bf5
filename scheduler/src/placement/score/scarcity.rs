//! Scarcity: the last nodes able to host a large shape are worth keeping able to. Each
//! protected shape (the largest the mix asks for: none of the others is larger in every
//! dimension) is counted over the cluster's nodes; a placement that leaves a node unable to
//! host a shape it could host costs the shape's accelerator demand over the number of nodes
//! that can host it now. With hundreds of hosts that is nothing; with a handful it outweighs
//! what fragmentation sees, so ordinary work goes elsewhere while elsewhere exists.
//!
//! (FGD weighs shapes by frequency, so a shape asked for rarely counts for nothing, yet when it
//! comes only an intact large node can take it; measured on openb, eight-accelerator pods with
//! 120 CPUs were dropped from 36% arrived demand on without this.)

use uni_core::units::MILLI_PER_DEVICE;

use crate::placement::node_state::NodeState;
use crate::placement::policy::TypicalShape;
use crate::placement::shape::Shape;

/// Protected shapes a policy may have: one bit each in a node's capability mask.
pub const MAX_PROTECTED: usize = 64;

/// Whether a node with these free resources (`free[i]`: thousandths of device `i`) could host
/// `s`.
pub fn hosts(
    node: &NodeState,
    free_compute: u64,
    free_memory: u64,
    free: &[u32],
    s: &TypicalShape,
) -> bool {
    fits(free_compute, free_memory, free, s) && allows_node(node, s)
}

/// Whether these free resources are enough for `s`, whatever the device models.
pub fn fits(free_compute: u64, free_memory: u64, free: &[u32], s: &TypicalShape) -> bool {
    free_compute >= s.compute_milli
        && free_memory >= s.memory_bytes
        && free.iter().filter(|&&f| f >= s.gpu_milli).count() >= s.gpus as usize
}

/// Whether `s` allows any of `node`'s device models.
pub fn allows_node(node: &NodeState, s: &TypicalShape) -> bool {
    node.devices.iter().any(|d| s.models.allows_device(d))
}

/// Bit `i` set: `node` could host `shapes[i]` once `compute` and `memory` more are taken and
/// `shape` is placed.
pub fn capable_after(
    node: &NodeState,
    compute: u64,
    memory: u64,
    shape: &Shape,
    shapes: &[TypicalShape],
) -> u64 {
    if shapes.is_empty() {
        return 0;
    }
    let free_compute = node.free_compute_milli().saturating_sub(compute);
    let free_memory = node.free_memory_bytes().saturating_sub(memory);
    let (free, devices) = shape.free_after(node);
    let mut mask = 0;
    for (i, s) in shapes.iter().enumerate().take(MAX_PROTECTED) {
        if hosts(node, free_compute, free_memory, &free[..devices], s) {
            mask |= 1 << i;
        }
    }
    mask
}

/// `capable_after` with nothing more placed.
pub fn capable(node: &NodeState, shapes: &[TypicalShape]) -> u64 {
    capable_after(node, 0, 0, &Shape::CPU_ONLY, shapes)
}

/// Accelerator thousandths at risk when the shapes in `lost` lose one host each:
/// `demand / hosts` per shape, `counts[i]` the nodes that can host shape `i` now.
pub fn loss(lost: u64, shapes: &[TypicalShape], counts: &[u32]) -> f64 {
    shapes
        .iter()
        .zip(counts)
        .enumerate()
        .take(MAX_PROTECTED)
        .filter(|(i, _)| lost & (1 << i) != 0)
        .map(|(_, (s, &n))| {
            let demand = f64::from(s.gpus) * f64::from(s.gpu_milli.min(MILLI_PER_DEVICE));
            demand / f64::from(n.max(1))
        })
        .sum()
}

/// Whether any node able to host `a` can host `b`: `a` asks for at least as much in every
/// dimension, and allows only models `b` allows.
fn covers(a: &TypicalShape, b: &TypicalShape) -> bool {
    let models = b.models.allowed.is_empty()
        || (!a.models.allowed.is_empty()
            && a.models
                .allowed
                .iter()
                .all(|m| b.models.allowed.contains(m)));
    let forbidden = b
        .models
        .forbidden
        .iter()
        .all(|m| a.models.forbidden.contains(m));
    a.compute_milli >= b.compute_milli
        && a.memory_bytes >= b.memory_bytes
        && a.gpus >= b.gpus
        && a.gpu_milli >= b.gpu_milli
        && models
        && forbidden
}

/// The shapes of `mix` worth protecting: those using accelerators that no other shape covers
/// (the largest of the mix; whatever hosts them hosts the rest), at most `MAX_PROTECTED`,
/// largest accelerator demand first.
pub fn protected(mix: &[TypicalShape]) -> Vec<TypicalShape> {
    let gpu: Vec<&TypicalShape> = mix.iter().filter(|s| s.uses_accelerators()).collect();
    let mut out: Vec<TypicalShape> = Vec::new();
    for (i, b) in gpu.iter().enumerate() {
        let covered = gpu.iter().enumerate().any(|(j, a)| {
            // Of two equal shapes, the first is kept.
            j != i && covers(a, b) && (!covers(b, a) || j < i)
        });
        if !covered {
            out.push((*b).clone());
        }
    }
    out.sort_by(largest_first);
    out.truncate(MAX_PROTECTED);
    out
}

/// Larger accelerator demand first, then more compute.
pub fn largest_first(a: &TypicalShape, b: &TypicalShape) -> std::cmp::Ordering {
    let demand = |s: &TypicalShape| u64::from(s.gpus) * u64::from(s.gpu_milli);
    demand(b)
        .cmp(&demand(a))
        .then(b.compute_milli.cmp(&a.compute_milli))
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::placement::node_state::DeviceState;
    use crate::placement::request::ModelFilter;

    fn node(devices: u32, compute: u64) -> NodeState {
        let mut n = NodeState::new("n", compute, 768 * GIB);
        n.devices = (0..devices)
            .map(|i| DeviceState::new(i, "G3", 32 * GIB, 100.0, 1.0))
            .collect();
        n
    }

    #[test]
    fn largest_shapes_are_protected() {
        let mut v100 = TypicalShape::new(8_000, 0, 1, 1000, 1.0);
        v100.models = ModelFilter {
            allowed: vec!["V100".into()],
            forbidden: vec![],
        };
        let mix = [
            TypicalShape::new(4_000, GIB, 1, 500, 5.0),
            TypicalShape::new(120_000, 700 * GIB, 8, 1000, 0.01),
            TypicalShape::new(88_000, 320 * GIB, 8, 1000, 0.1),
            TypicalShape::new(2_000, GIB, 0, 0, 3.0),
            v100.clone(),
        ];
        let p = protected(&mix);
        // The 88-CPU and half-device shapes are covered by the 120-CPU one; the V100-only shape
        // is not (a node able to host the larger one may have other models).
        assert_eq!(p, vec![mix[1].clone(), v100]);
    }

    #[test]
    fn a_placement_that_breaks_a_scarce_host_costs_more_than_a_common_one() {
        let big = [TypicalShape::new(120_000, 700 * GIB, 8, 1000, 0.01)];
        let n = node(8, 128_000);
        assert_eq!(capable(&n, &big), 1);
        // 10 CPUs taken: 118 left, too few for the shape.
        assert_eq!(capable_after(&n, 10_000, 0, &Shape::CPU_ONLY, &big), 0);
        assert_eq!(capable_after(&n, 8_000, 0, &Shape::CPU_ONLY, &big), 1);
        // One device taken: seven left.
        let one = Shape {
            devices: 1,
            share_milli: 1000,
            ..Shape::CPU_ONLY
        };
        assert_eq!(capable_after(&n, 0, 0, &one, &big), 0);
        assert_eq!(loss(1, &big, &[4]), 2000.0);
        assert_eq!(loss(1, &big, &[400]), 20.0);
        assert_eq!(loss(0, &big, &[4]), 0.0);
    }
}
