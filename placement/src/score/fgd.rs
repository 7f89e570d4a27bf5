//! The FGD paper's own policy, fragmentation gradient descent (Weng et al., ATC '23), as its
//! public simulator scores it (`pkg/simulator/plugin/fgd_score.go` and `pkg/utils/frag.go` in
//! hkust-adsl/kubernetes-scheduler-simulator). A node's fragmentation is the free GPU capacity
//! the typical shapes, weighted by frequency, could not use: all of it for a shape the node
//! cannot host (too few devices with its share free, too little CPU, the wrong model, or no GPU
//! at all), else the free shares too small for it. A placement scores
//! `sigmoid((before - after) / 1000) * 100`, truncated to an integer; a fraction goes to the
//! first device with the best score. Memory is not part of the measure.

use uni_core::units::MILLI_PER_DEVICE;

use crate::node_state::NodeState;
use crate::request::ReplicaRequest;
use crate::shape::Shape;
use crate::typical::TypicalShape;

/// Expected free thousandths on `node` the typical shapes could not use, with `free_compute`
/// milli-UCU and `free[i]` thousandths of device `i` free.
pub fn of_free(node: &NodeState, free_compute: u64, free: &[u32], shapes: &[TypicalShape]) -> f64 {
    unusable_by_mix(free, shapes.iter().filter(|s| s.weight > 0.0), |s| {
        s.uses_accelerators()
            && free_compute >= s.compute_milli
            && node.devices.iter().any(|d| s.models.allows_device(d))
            && free.iter().filter(|&&f| f >= s.gpu_milli).count() >= s.gpus as usize
    })
}

/// The frequency-weighted mean, over `shapes`, of the free thousandths in `free` a shape could
/// not use: all of them where `usable` says it cannot run, else the shares too small for it.
pub fn unusable_by_mix<'a>(
    free: &[u32],
    shapes: impl Iterator<Item = &'a TypicalShape>,
    usable: impl Fn(&TypicalShape) -> bool,
) -> f64 {
    let total: u64 = free.iter().map(|&f| u64::from(f)).sum();
    if total == 0 {
        return 0.0;
    }
    let (mut sum, mut weights) = (0.0, 0.0);
    for s in shapes {
        weights += s.weight;
        let unusable = if usable(s) {
            free.iter()
                .filter(|&&f| f < s.gpu_milli)
                .map(|&f| u64::from(f))
                .sum()
        } else {
            total
        };
        sum += s.weight * unusable as f64;
    }
    if weights > 0.0 {
        sum / weights
    } else {
        0.0
    }
}

/// The node's fragmentation once `req` takes `shape` (`Shape::CPU_ONLY` and no request: now).
pub fn of_node(
    node: &NodeState,
    shape: &Shape,
    req: Option<&ReplicaRequest>,
    shapes: &[TypicalShape],
) -> f64 {
    let compute = req.map_or(0, |r| r.compute_milli);
    let free_compute = node.free_compute_milli().saturating_sub(compute);
    let (free, devices) = shape.free_after(node);
    of_free(node, free_compute, &free[..devices], shapes)
}

/// `sigmoid((before - after) / 1000) * 100`, truncated: 50 when nothing changes.
pub fn score(before: f64, after: f64) -> f64 {
    let x = (before - after) / f64::from(MILLI_PER_DEVICE);
    (100.0 / (1.0 + (-x).exp())).floor()
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;
    use crate::request::ModelFilter;
    use uni_core::model::WorkloadRef;

    fn node(used: &[u32]) -> NodeState {
        let mut n = NodeState::new("n", 16_000, 64 * GIB);
        n.devices = used
            .iter()
            .enumerate()
            .map(|(i, &u)| DeviceState {
                used_milli: u,
                ..DeviceState::new(i as u32, "T4", 16 * GIB, 65.0, 0.3)
            })
            .collect();
        n
    }

    #[test]
    fn hand_computed_fragmentation() {
        // Free: 300 and 1000. Half the mix wants 500 of one GPU: the 300 is unusable to it.
        // A quarter wants a whole GPU: the 300 again. A quarter is CPU-only: all 1300.
        let shapes = [
            TypicalShape::new(4_000, 0, 1, 500, 0.5),
            TypicalShape::new(8_000, 0, 1, 1000, 0.25),
            TypicalShape::new(2_000, 0, 0, 0, 0.25),
        ];
        let n = node(&[700, 0]);
        let now = of_node(&n, &Shape::CPU_ONLY, None, &shapes);
        assert!((now - (0.5 * 300.0 + 0.25 * 300.0 + 0.25 * 1300.0)).abs() < 1e-9);
        // A CPU-only request leaving 6 CPUs: the whole-GPU shape (8 CPUs) can no longer run.
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 10_000, GIB);
        let after = of_node(&n, &Shape::CPU_ONLY, Some(&req), &shapes);
        assert!((after - (0.5 * 300.0 + 0.25 * 1300.0 + 0.25 * 1300.0)).abs() < 1e-9);
        // The score: sigmoid(-0.25) = 0.4378 -> 43.
        assert_eq!(score(now, after), 43.0);
        assert_eq!(score(now, now), 50.0);
    }

    #[test]
    fn shapes_of_other_models_count_all_free_capacity() {
        let mut shape = TypicalShape::new(0, 0, 1, 500, 1.0);
        shape.models = ModelFilter {
            allowed: vec!["V100M32".into()],
            forbidden: vec![],
        };
        let n = node(&[0, 0]);
        assert_eq!(of_node(&n, &Shape::CPU_ONLY, None, &[shape]), 2000.0);
    }

    #[test]
    fn leaving_a_sliver_too_small_for_the_mix_scores_lower() {
        let shapes = [TypicalShape::new(0, 0, 1, 500, 1.0)];
        let n = node(&[500, 0]);
        let before = of_node(&n, &Shape::CPU_ONLY, None, &shapes);
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 0, 0);
        let on = |position: usize| Shape {
            devices: 1 << position,
            share_milli: 300,
            ..Shape::CPU_ONLY
        };
        // On the used device: 200 left, unusable, replacing a usable 500: frag 200.
        // On the fresh one: 700 left, usable; frag 0 + nothing: 0.
        let used = score(before, of_node(&n, &on(0), Some(&req), &shapes));
        let fresh = score(before, of_node(&n, &on(1), Some(&req), &shapes));
        assert_eq!((used, fresh), (45.0, 50.0));
    }
}
