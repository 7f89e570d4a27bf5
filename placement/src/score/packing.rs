//! Packing (best fit): prefer the node, and the device, left with the least free capacity,
//! accelerator dimension first, so that whole nodes and devices stay free for large requests.

use uni_core::units::MILLI_PER_DEVICE;

use crate::node_state::NodeState;
use crate::request::ReplicaRequest;
use crate::shape::Shape;

/// Fraction of `capacity` in use once `used` is; a resource the node lacks counts as full.
fn utilization(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        1.0
    } else {
        (used as f64 / capacity as f64).min(1.0)
    }
}

pub fn score(node: &NodeState, shape: &Shape, req: &ReplicaRequest) -> f64 {
    let compute = utilization(
        node.used_compute_milli + req.compute_milli,
        node.compute_milli,
    );
    let memory = utilization(node.used_memory_bytes + req.memory_bytes, node.memory_bytes);
    let host = (compute + memory) / 2.0;
    if shape.devices == 0 {
        return 100.0 * host;
    }
    let total = node.healthy_device_milli();
    let free_after: u64 = node
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| u64::from(shape.free_milli_after(d, i)))
        .sum();
    let node_gpu = utilization(total.saturating_sub(free_after), total);
    if shape.is_whole() {
        return 100.0 * (0.8 * node_gpu + 0.2 * host);
    }
    // A shared device: fill the fullest device that fits first.
    let device = node
        .devices
        .iter()
        .enumerate()
        .find(|(i, _)| shape.includes(*i))
        .map_or(1.0, |(i, d)| {
            let free = shape.free_milli_after(d, i);
            1.0 - f64::from(free) / f64::from(MILLI_PER_DEVICE)
        });
    100.0 * (0.4 * device + 0.4 * node_gpu + 0.2 * host)
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;
    use uni_core::model::WorkloadRef;

    fn node(used_milli: [u32; 2]) -> NodeState {
        let mut n = NodeState::new("n", 8000, 64 * GIB);
        n.devices = (0..2)
            .map(|i| DeviceState::new(i, "m", 16 * GIB, 100.0, 1.0))
            .collect();
        n.devices[0].used_milli = used_milli[0];
        n.devices[1].used_milli = used_milli[1];
        n
    }

    fn frac(position: usize, share: u32) -> Shape {
        Shape {
            devices: 1 << position,
            share_milli: share,
            ..Shape::CPU_ONLY
        }
    }

    #[test]
    fn fuller_node_and_device_score_higher() {
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB);
        let busy = node([500, 0]);
        assert!(score(&busy, &frac(0, 250), &req) > score(&busy, &frac(1, 250), &req));
        assert!(score(&busy, &frac(1, 250), &req) > score(&node([0, 0]), &frac(1, 250), &req));
        let mut cpu = NodeState::new("c", 8000, 64 * GIB);
        let empty = score(&cpu, &Shape::CPU_ONLY, &req);
        cpu.used_compute_milli = 4000;
        assert!(score(&cpu, &Shape::CPU_ONLY, &req) > empty);
        assert!(score(&cpu, &Shape::CPU_ONLY, &req) <= 100.0);
    }
}
