//! The FGD paper's DotProd baseline (Tetris's alignment heuristic), as its public simulator
//! scores it (`pkg/simulator/plugin/dot_product_score.go`, run with `merge` dimensions and
//! `max` normalization): the dot product of the node's free (CPU, all GPU) and the request,
//! each divided by the largest node's; the smallest product scores highest, as an integer
//! 0..100. A fraction takes the tightest device, as best fit does.

use uni_core::units::MILLI_PER_DEVICE;

use crate::node_state::NodeState;
use crate::policy::NodeScale;
use crate::request::{GpuDemand, ReplicaRequest};

/// Thousandths of a device the request takes in all (a fraction's share, or whole devices).
pub fn requested_milli(req: &ReplicaRequest, shape_share: u32, shape_count: u32) -> u64 {
    match &req.gpu {
        None => 0,
        Some(GpuDemand::Fraction { .. }) => u64::from(shape_share),
        Some(GpuDemand::Whole { .. }) => u64::from(shape_count) * u64::from(MILLI_PER_DEVICE),
    }
}

/// `(1 - (free . request) / 2) * 100` over normalized (CPU, GPU), truncated.
pub fn score(node: &NodeState, req: &ReplicaRequest, gpu_milli: u64, scale: &NodeScale) -> f64 {
    let max_compute = scale.compute_milli.max(1) as f64;
    let max_devices = (u64::from(scale.devices) * u64::from(MILLI_PER_DEVICE)).max(1) as f64;
    let free = [
        node.free_compute_milli() as f64 / max_compute,
        node.free_device_milli() as f64 / max_devices,
    ];
    let asked = [
        req.compute_milli as f64 / max_compute,
        gpu_milli as f64 / max_devices,
    ];
    let dot = free[0] * asked[0] + free[1] * asked[1];
    ((1.0 - dot / 2.0) * 100.0).clamp(0.0, 100.0).floor()
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;
    use uni_core::model::WorkloadRef;

    #[test]
    fn smaller_alignment_scores_higher() {
        let mut roomy = NodeState::new("a", 128_000, 512 * GIB);
        roomy.devices = (0..8)
            .map(|i| DeviceState::new(i, "m", 16 * GIB, 100.0, 1.0))
            .collect();
        let mut tight = roomy.clone();
        tight.used_compute_milli = 96_000;
        for d in &mut tight.devices[..6] {
            d.used_milli = 1000;
        }
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 16_000, GIB);
        // Roomy: free (1, 1) . (0.125, 0.125) = 0.25 -> (1 - 0.125) * 100 = 87.5 -> 87.
        assert_eq!(score(&roomy, &req, 1000, &NodeScale::OPENB), 87.0);
        // Tight: (0.25, 0.25) . (0.125, 0.125) = 0.0625 -> 96.875 -> 96.
        assert_eq!(score(&tight, &req, 1000, &NodeScale::OPENB), 96.0);
    }
}
