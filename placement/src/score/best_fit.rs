//! The FGD paper's BestFit baseline, as its public simulator scores it
//! (`pkg/simulator/plugin/best_fit_score.go` in hkust-adsl/kubernetes-scheduler-simulator):
//! the node left with the least free CPU and GPU, each divided by the largest node's and
//! weighted 1/2, as an integer 0..100; memory is not scored (it is only a filter there too).
//! On the chosen node the device left with the least free share that fits takes a fraction
//! (its `allocateGpuIdBasedOnBestFit`).

use uni_core::units::MILLI_PER_DEVICE;

use crate::node_state::NodeState;
use crate::policy::NodeScale;
use crate::request::ReplicaRequest;
use crate::shape::Shape;

/// Free compute and free device thousandths (all devices) once `shape` is placed.
pub fn free_after(node: &NodeState, shape: &Shape, req: &ReplicaRequest) -> (u64, u64) {
    let compute = node.free_compute_milli().saturating_sub(req.compute_milli);
    let devices = node
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| u64::from(shape.free_milli_after(d, i)))
        .sum();
    (compute, devices)
}

/// `(1 - (cpu_left / max_cpu + gpu_left / max_gpu) / 2) * 100`, truncated as the Go int64
/// conversion does.
pub fn score(node: &NodeState, shape: &Shape, req: &ReplicaRequest, scale: &NodeScale) -> f64 {
    let (compute, devices) = free_after(node, shape, req);
    let max_compute = scale.compute_milli.max(1) as f64;
    let max_devices = (u64::from(scale.devices) * u64::from(MILLI_PER_DEVICE)).max(1) as f64;
    let left = 0.5 * compute as f64 / max_compute + 0.5 * devices as f64 / max_devices;
    ((1.0 - left) * 100.0).clamp(0.0, 100.0).floor()
}

/// Among shapes on one node: the device left with the least free share (higher is better).
pub fn device_preference(node: &NodeState, shape: &Shape) -> f64 {
    if shape.is_whole() {
        return 0.0;
    }
    node.devices
        .iter()
        .enumerate()
        .find(|(i, _)| shape.includes(*i))
        .map_or(0.0, |(i, d)| -f64::from(shape.free_milli_after(d, i)))
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;
    use uni_core::model::WorkloadRef;

    fn node(compute: u64, used: &[u32]) -> NodeState {
        let mut n = NodeState::new("n", compute, 64 * GIB);
        n.devices = used
            .iter()
            .enumerate()
            .map(|(i, &u)| DeviceState {
                used_milli: u,
                ..DeviceState::new(i as u32, "m", 16 * GIB, 100.0, 1.0)
            })
            .collect();
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
    fn hand_computed_scores() {
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 32_000, GIB);
        // 64 - 32 = 32 CPUs left of 128: 0.125; 2 GPUs - 0.5 left = 1500 of 8000: 0.09375.
        let n = node(64_000, &[0, 500]);
        assert_eq!(score(&n, &frac(1, 0), &req, &NodeScale::OPENB), 78.0);
        // Taking 500 more: 1000 left: 0.0625 -> (1 - 0.1875) * 100 = 81.25 -> 81.
        assert_eq!(score(&n, &frac(1, 500), &req, &NodeScale::OPENB), 81.0);
    }

    #[test]
    fn the_tightest_device_is_preferred() {
        let n = node(64_000, &[0, 600, 200]);
        let prefs: Vec<f64> = (0..3)
            .map(|i| device_preference(&n, &frac(i, 300)))
            .collect();
        assert!(prefs[1] > prefs[2] && prefs[2] > prefs[0], "{prefs:?}");
    }
}
