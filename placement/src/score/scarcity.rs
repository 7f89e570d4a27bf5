//! Scarcity: the last nodes able to host a large shape are worth keeping able to. Each
//! protected shape (the largest the mix asks for: none of the others is larger in every
//! dimension) is counted over the cluster's nodes; a placement that leaves a node unable to
//! host a shape it could host costs the shape's accelerator demand over the number of nodes
//! that can host it now. With hundreds of hosts that is nothing; with a handful it outweighs
//! what fragmentation sees, so ordinary work goes elsewhere while elsewhere exists.
//!
//! (FGD weighs shapes by frequency, so a shape asked for rarely counts for nothing, yet when it
//! comes only an intact large node can take it.)

use uni_core::units::MILLI_PER_DEVICE;

use crate::mix::protected::MAX_PROTECTED;
use crate::node_state::NodeState;
use crate::shape::Shape;
use crate::typical::TypicalShape;

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

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;

    fn node(devices: u32, compute: u64) -> NodeState {
        let mut n = NodeState::new("n", compute, 768 * GIB);
        n.devices = (0..devices)
            .map(|i| DeviceState::new(i, "G3", 32 * GIB, 100.0, 1.0))
            .collect();
        n
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
