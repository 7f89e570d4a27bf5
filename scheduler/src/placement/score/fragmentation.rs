//! Fragmentation (after FGD, Weng et al., ATC '23): free accelerator capacity is fragmented
//! when the typical request shapes can no longer use it, because a device has too small a
//! share left, too few whole devices remain, or the host's CPU or memory ran out. A placement
//! scores by how little it grows the node's expected fragmentation. This keeps CPU-only and
//! small requests from stranding free GPUs and sends shared requests to devices already in use.

use uni_core::units::MILLI_PER_DEVICE;

use crate::placement::node_state::NodeState;
use crate::placement::policy::TypicalShape;
use crate::placement::request::PodRequest;
use crate::placement::shape::{Shape, MAX_DEVICES};

/// Fragmentation growth, in thousandths of a device, that halves the score from 50 to 0 (and
/// its shrinking, from 50 to 100).
const SCALE: f64 = MILLI_PER_DEVICE as f64;

/// Points taken from CPU-only work on a node with free accelerators: a CPU node cannot
/// strand accelerators, and a GPU node's CPU is what its free accelerators will need.
pub const CPU_ON_ACCELERATOR_NODE: f64 = 25.0;

/// Expected free milli-devices on `node` that a typical shape could not use, once `compute`
/// and `memory` more are taken and `shape` is placed (weighted by the shapes' frequencies).
pub fn of_node(
    node: &NodeState,
    compute: u64,
    memory: u64,
    shape: &Shape,
    shapes: &[TypicalShape],
) -> f64 {
    let free_compute = node.free_compute_milli().saturating_sub(compute);
    let free_memory = node.free_memory_bytes().saturating_sub(memory);
    let mut free = [0u32; MAX_DEVICES];
    let devices = node.devices.len().min(MAX_DEVICES);
    let (mut total, mut whole) = (0u64, 0u32);
    for (i, d) in node.devices.iter().enumerate().take(devices) {
        free[i] = shape.free_milli_after(d, i);
        total += u64::from(free[i]);
        whole += u32::from(free[i] >= MILLI_PER_DEVICE);
    }
    if total == 0 {
        return 0.0;
    }
    let free = &free[..devices];
    let (mut sum, mut weights) = (0.0, 0.0);
    for s in shapes.iter().filter(|s| s.gpus > 0 && s.weight > 0.0) {
        let unusable = if free_compute < s.compute_milli || free_memory < s.memory_bytes {
            total
        } else if s.gpus == 1 && s.gpu_milli < MILLI_PER_DEVICE {
            free.iter()
                .filter(|&&f| f < s.gpu_milli)
                .map(|&f| u64::from(f))
                .sum()
        } else if whole < s.gpus {
            total
        } else {
            // Partly used devices cannot take whole-device work.
            total - u64::from(whole) * u64::from(MILLI_PER_DEVICE)
        };
        sum += s.weight * unusable as f64;
        weights += s.weight;
    }
    if weights > 0.0 {
        sum / weights
    } else {
        0.0
    }
}

/// 50 when fragmentation does not change, toward 100 as it shrinks, toward 0 as it grows.
pub fn score(
    node: &NodeState,
    before: f64,
    shape: &Shape,
    req: &PodRequest,
    shapes: &[TypicalShape],
) -> f64 {
    let after = of_node(node, req.compute_milli, req.memory_bytes, shape, shapes);
    let mut score = 100.0 * ((SCALE - (after - before)) / (2.0 * SCALE)).clamp(0.0, 1.0);
    if req.gpu.is_none() && node.free_device_milli() > 0 {
        score = (score - CPU_ON_ACCELERATOR_NODE).max(0.0);
    }
    score
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::placement::node_state::DeviceState;
    use crate::placement::policy::default_typical_shapes;
    use crate::placement::request::{GpuDemand, ModelFilter};
    use crate::placement::snapshot::WorkloadRef;

    fn gpu_node(devices: u32, compute: u64) -> NodeState {
        let mut n = NodeState::new("g", compute, 512 * GIB);
        n.devices = (0..devices)
            .map(|i| DeviceState::new(i, "m", 16 * GIB, 100.0, 1.0))
            .collect();
        n
    }

    fn score_of(node: &NodeState, shape: &Shape, req: &PodRequest) -> f64 {
        let shapes = default_typical_shapes();
        let before = of_node(node, 0, 0, &Shape::CPU_ONLY, &shapes);
        score(node, before, shape, req, &shapes)
    }

    fn whole_shape(positions: &[usize]) -> Shape {
        Shape {
            devices: positions.iter().map(|p| 1u64 << p).sum(),
            share_milli: 1000,
            ..Shape::CPU_ONLY
        }
    }

    #[test]
    fn measures_what_typical_shapes_cannot_use() {
        let shapes = [TypicalShape::new(1000, 0, 1, 500, 1.0)];
        let mut n = gpu_node(2, 4000);
        n.devices[0].used_milli = 700;
        // Device 0 has 300 free, too little for a 500 share: 300 fragmented.
        assert_eq!(of_node(&n, 0, 0, &Shape::CPU_ONLY, &shapes), 300.0);
        // Without the CPU for the shape, all 1300 free are fragmented.
        assert_eq!(of_node(&n, 3500, 0, &Shape::CPU_ONLY, &shapes), 1300.0);
        let whole = [TypicalShape::new(0, 0, 2, 1000, 1.0)];
        assert_eq!(of_node(&n, 0, 0, &Shape::CPU_ONLY, &whole), 1300.0);
        assert_eq!(
            of_node(&gpu_node(2, 1), 0, 0, &Shape::CPU_ONLY, &whole),
            0.0
        );
    }

    #[test]
    fn cpu_work_that_strands_gpus_scores_low() {
        let req = PodRequest::new(WorkloadRef::new("ns", "w"), 12_000, GIB);
        let cpu_node = NodeState::new("c", 64_000, 512 * GIB);
        let tight = gpu_node(2, 16_000);
        let roomy = gpu_node(2, 128_000);
        let on_cpu = score_of(&cpu_node, &Shape::CPU_ONLY, &req);
        let on_tight = score_of(&tight, &Shape::CPU_ONLY, &req);
        let on_roomy = score_of(&roomy, &Shape::CPU_ONLY, &req);
        assert_eq!(on_cpu, 50.0);
        assert!(on_roomy < on_cpu, "{on_roomy} vs {on_cpu}");
        assert!(on_tight < on_roomy, "{on_tight} vs {on_roomy}");
    }

    #[test]
    fn shared_requests_prefer_partly_used_devices() {
        let mut n = gpu_node(2, 64_000);
        n.devices[0].used_milli = 500;
        let mut req = PodRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB);
        req.gpu = Some(GpuDemand::Fraction {
            milli: Some(250),
            memory_bytes: 0,
            tflops: 0.0,
            models: ModelFilter::default(),
        });
        let used = Shape {
            devices: 0b01,
            share_milli: 250,
            ..Shape::CPU_ONLY
        };
        let fresh = Shape {
            devices: 0b10,
            ..used
        };
        assert!(score_of(&n, &used, &req) > score_of(&n, &fresh, &req));
    }

    #[test]
    fn whole_requests_prefer_nodes_already_broken_up() {
        let mut req = PodRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB);
        req.gpu = Some(GpuDemand::Whole {
            min_devices: 1,
            max_devices: 1,
            memory_bytes_total: 0,
            tflops_total: 0.0,
            interconnect: Default::default(),
            models: ModelFilter::default(),
        });
        let mut leftover = gpu_node(8, 256_000);
        for d in &mut leftover.devices[1..] {
            d.used_milli = 1000;
        }
        let intact = gpu_node(8, 256_000);
        assert!(
            score_of(&leftover, &whole_shape(&[0]), &req)
                > score_of(&intact, &whole_shape(&[0]), &req)
        );
    }
}
