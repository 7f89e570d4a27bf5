//! Fragmentation: the free accelerator capacity of a node that the typical request shapes
//! could not use. Two parts, both in thousandths of a device:
//!
//! - per shape, as FGD measures it (Weng et al., ATC '23): all free capacity when the node
//!   cannot host the shape (too few devices with its share free, not enough CPU or memory),
//!   else the free shares too small for it. Unlike FGD, shapes that allow none of the node's
//!   device models are left out (the mean is over the shapes that could ever run there): FGD
//!   counts every free device as lost to them, which rewards any placement on the models that
//!   constrained work avoids, whatever it does to packing;
//! - stranding, which FGD's one-request look-ahead misses: the free devices the node's free
//!   CPU and memory could not feed at the mix's CPU and memory per device. CPU-only work that
//!   eats the CPU a node's free GPUs will need, or a GPU request with little CPU landing on a
//!   node rich in CPU, grows it. The mix's CPU per device counts its CPU-only work too: the
//!   host capacity next to the devices is what both will ask for.
//!
//! A placement scores by how much it changes the node's fragmentation, through FGD's sigmoid,
//! truncated to whole points: differences of a few hundredths of a device do not count, so
//! equally good placements tie and the tie-break consolidates them (exact scores spread work
//! over more nodes and fragment more).
//!
//! What each part is worth on the openb traces: BENCHMARKS.md, "Why each part is there".

use uni_core::units::MILLI_PER_DEVICE;

use super::{fgd, scarcity};
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;
use crate::shape::Shape;
use crate::typical::TypicalShape;

/// Points taken from CPU-only work on a node with free accelerators, on top of what stranding
/// charges: among placements that strand nothing, CPU nodes and nodes whose accelerators are
/// all taken come first (less than one point, so it only orders equals).
pub const CPU_ON_ACCELERATOR_NODE: f64 = 0.5;

/// Host compute and memory the mix asks for per thousandth of a device it asks for (every
/// shape, CPU-only work included, weighted by frequency); `None` without accelerator demand.
pub fn host_per_milli(shapes: &[TypicalShape]) -> Option<(f64, f64)> {
    let (mut compute, mut memory, mut milli) = (0.0, 0.0, 0.0);
    for s in shapes.iter().filter(|s| s.weight > 0.0) {
        compute += s.weight * s.compute_milli as f64;
        memory += s.weight * s.memory_bytes as f64;
        if s.uses_accelerators() {
            milli += s.weight * f64::from(s.gpus) * f64::from(s.gpu_milli);
        }
    }
    (milli > 0.0).then(|| (compute / milli, memory / milli))
}

/// The typical shapes with what the measure derives from them, computed once per placement
/// rather than for every candidate.
#[derive(Debug, Clone, Copy)]
pub struct TypicalMix<'a> {
    pub shapes: &'a [TypicalShape],
    /// `host_per_milli(shapes)`.
    pub host_per_milli: Option<(f64, f64)>,
}

impl<'a> TypicalMix<'a> {
    pub fn new(shapes: &'a [TypicalShape]) -> Self {
        Self {
            shapes,
            host_per_milli: host_per_milli(shapes),
        }
    }
}

/// Expected free milli-devices on `node` that the typical shapes could not use, once `compute`
/// and `memory` more are taken and `shape` is placed.
pub fn of_node(
    node: &NodeState,
    compute: u64,
    memory: u64,
    shape: &Shape,
    mix: &TypicalMix,
) -> f64 {
    let free_compute = node.free_compute_milli().saturating_sub(compute);
    let free_memory = node.free_memory_bytes().saturating_sub(memory);
    let (free, devices) = shape.free_after(node);
    let free = &free[..devices];
    let total: u64 = free.iter().map(|&f| u64::from(f)).sum();
    if total == 0 {
        return 0.0;
    }
    let per_shape = fgd::unusable_by_mix(
        free,
        mix.shapes
            .iter()
            .filter(|s| s.uses_accelerators() && s.weight > 0.0)
            .filter(|s| scarcity::allows_node(node, s)),
        |s| scarcity::fits(free_compute, free_memory, free, s),
    );
    let stranded = mix.host_per_milli.map_or(0.0, |(cpu, mem)| {
        let by_cpu = if cpu > 0.0 {
            free_compute as f64 / cpu
        } else {
            f64::INFINITY
        };
        let by_memory = if mem > 0.0 {
            free_memory as f64 / mem
        } else {
            f64::INFINITY
        };
        (total as f64 - by_cpu.min(by_memory)).max(0.0)
    });
    per_shape + stranded
}

/// `100 * sigmoid((before - after) / 1000)`, in whole points: 50 when nothing changes.
/// `added` (thousandths) counts as fragmentation the placement adds beyond the node's measure:
/// hosts of protected shapes put at risk (`scarcity`) and device capacity forgone
/// (`gap_value`).
pub fn score(
    node: &NodeState,
    before: f64,
    shape: &Shape,
    req: &ReplicaRequest,
    mix: &TypicalMix,
    added: f64,
) -> f64 {
    let after = of_node(node, req.compute_milli, req.memory_bytes, shape, mix) + added;
    let x = (before - after) / f64::from(MILLI_PER_DEVICE);
    let mut score = (100.0 / (1.0 + (-x).exp())).floor();
    if req.gpu.is_none() && node.free_device_milli() > 0 {
        score -= CPU_ON_ACCELERATOR_NODE;
    }
    score
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::node_state::DeviceState;
    use crate::request::{GpuDemand, ModelFilter};
    use crate::typical::default_typical_shapes;
    use uni_core::model::WorkloadRef;

    fn gpu_node(devices: u32, compute: u64) -> NodeState {
        let mut n = NodeState::new("g", compute, 512 * GIB);
        n.devices = (0..devices)
            .map(|i| DeviceState::new(i, "m", 16 * GIB, 100.0, 1.0))
            .collect();
        n
    }

    fn score_of(node: &NodeState, shape: &Shape, req: &ReplicaRequest) -> f64 {
        let shapes = default_typical_shapes();
        let mix = TypicalMix::new(&shapes);
        let before = of_node(node, 0, 0, &Shape::CPU_ONLY, &mix);
        score(node, before, shape, req, &mix, 0.0)
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
        // 1 CPU per half device: 2 CPUs feed a device; the node has 4.
        let shapes = [TypicalShape::new(1000, 0, 1, 500, 1.0)];
        let mut n = gpu_node(2, 4000);
        n.devices[0].used_milli = 700;
        // Device 0 has 300 free, too little for a 500 share: 300 fragmented.
        assert_eq!(
            of_node(&n, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&shapes)),
            300.0
        );
        // With 0.5 CPU left: the shape cannot run (all 1300) and 0.5 CPU feeds 250 of it.
        assert_eq!(
            of_node(&n, 3500, 0, &Shape::CPU_ONLY, &TypicalMix::new(&shapes)),
            1300.0 + 1050.0
        );
        let whole = [TypicalShape::new(0, 0, 2, 1000, 1.0)];
        assert_eq!(
            of_node(&n, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&whole)),
            1300.0
        );
        assert_eq!(
            of_node(
                &gpu_node(2, 1),
                0,
                0,
                &Shape::CPU_ONLY,
                &TypicalMix::new(&whole)
            ),
            0.0
        );
    }

    #[test]
    fn free_devices_without_cpu_to_feed_them_are_stranded() {
        // The mix needs 4 CPUs per device; 6 CPUs feed 1.5 of the 2 free devices.
        let shapes = [TypicalShape::new(4000, 0, 1, 1000, 1.0)];
        let n = gpu_node(2, 6000);
        assert_eq!(
            of_node(&n, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&shapes)),
            500.0
        );
        assert_eq!(host_per_milli(&shapes), Some((4.0, 0.0)));
        // CPU-only work as frequent as the GPU work, with 2 CPUs each: 6 CPUs per device,
        // so the same 6 CPUs feed one of the two.
        let with_cpu_work = [shapes[0].clone(), TypicalShape::new(2000, 0, 0, 0, 1.0)];
        assert_eq!(host_per_milli(&with_cpu_work), Some((6.0, 0.0)));
        assert_eq!(
            of_node(&n, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&with_cpu_work)),
            1000.0
        );
        assert_eq!(host_per_milli(&with_cpu_work[1..]), None);
        let other_model = TypicalShape {
            models: ModelFilter {
                allowed: vec!["other".into()],
                forbidden: vec![],
            },
            ..TypicalShape::new(0, 0, 1, 1000, 1.0)
        };
        // A shape that can never run on the node's model leaves the measure.
        assert_eq!(
            of_node(
                &n,
                0,
                0,
                &Shape::CPU_ONLY,
                &TypicalMix::new(std::slice::from_ref(&other_model))
            ),
            0.0
        );
        let mut used = gpu_node(2, 64_000);
        used.devices[0].used_milli = 700;
        let half = TypicalShape::new(0, 0, 1, 500, 1.0);
        let with_other = [
            half.clone(),
            TypicalShape {
                weight: 3.0,
                ..other_model
            },
        ];
        assert_eq!(
            of_node(&used, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&[half])),
            300.0
        );
        assert_eq!(
            of_node(&used, 0, 0, &Shape::CPU_ONLY, &TypicalMix::new(&with_other)),
            300.0
        );
    }

    #[test]
    fn cpu_work_that_strands_gpus_scores_low() {
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 12_000, GIB);
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
        let mut req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB);
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
        let mut req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1000, GIB);
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
