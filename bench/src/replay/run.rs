//! One replay: the seed's arrivals placed one at a time through the scheduler's own placement
//! engine (`place`, then the allocation reserved in the snapshot, as the scheduling loop does);
//! a pod that fits nowhere is dropped. Records, after every pod, the GPU demand arrived so far
//! (dropped pods included) and the GPU allocated, and the fragmentation at each whole percent
//! of arrived demand.

use std::time::{Duration, Instant};

use uni_core::model::Allocation;
use uni_placement::learn::MixLearner;
use uni_placement::mix::counts::ShapeCounts;
use uni_placement::score::fgd;
use uni_placement::shape::Shape;
use uni_placement::typical::TypicalShape;
use uni_placement::ReplicaRequest;
use uni_placement::Snapshot;
use uni_placement::{place, Decision, Mix, Policy};

use super::trace::{pod_request, TracePod, NAMESPACE};
use super::workload::Arrival;

/// Kinds of pods, for counting failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CpuOnly,
    SharedGpu,
    OneGpu,
    MultiGpu,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::CpuOnly, Kind::SharedGpu, Kind::OneGpu, Kind::MultiGpu];

    pub fn of(pod: &TracePod) -> Kind {
        match pod.num_gpu {
            0 => Kind::CpuOnly,
            1 if pod.is_shared() => Kind::SharedGpu,
            1 => Kind::OneGpu,
            _ => Kind::MultiGpu,
        }
    }
}

/// What one replay saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// After each pod: (arrived, allocated) GPU thousandths.
    pub events: Vec<(u64, u64)>,
    /// Failed pods by kind, all and by the time arrived demand reached 100%.
    pub failed: Vec<(Kind, usize, usize)>,
    /// Fragmented share of the free GPU capacity (the paper's measure, against the trace's
    /// typical shapes) when arrived demand first reached each whole percent 0..=130.
    pub fragmentation: Vec<(u32, f64)>,
    /// Time spent in `place` (the decision, not the bookkeeping).
    pub placing: Duration,
    pub placements: usize,
}

/// The allocation the scheduler would record for `decision`.
pub fn allocation(id: &str, req: &ReplicaRequest, decision: &Decision) -> Allocation {
    Allocation {
        id: id.to_string(),
        namespace: NAMESPACE.to_string(),
        workload: req.workload.name.clone(),
        node: decision.node.clone(),
        compute_milli: req.compute_milli,
        memory_bytes: req.memory_bytes,
        devices: decision.devices.clone(),
        models: req.allowed_models(),
        ..Allocation::default()
    }
}

/// Free GPU capacity the typical shapes could not use, over all free GPU capacity, in percent.
pub fn fragmentation(snapshot: &Snapshot, shapes: &[TypicalShape]) -> f64 {
    let (mut frag, mut free) = (0.0, 0u64);
    for node in snapshot.nodes() {
        frag += fgd::of_node(node, &Shape::CPU_ONLY, None, shapes);
        free += node.free_device_milli();
    }
    if free == 0 {
        0.0
    } else {
        100.0 * frag / free as f64
    }
}

/// Pods placed between two readings of the mix by a learning policy.
pub const LEARN_EVERY: usize = 100;

/// Replays `arrivals` on `cluster` (a snapshot without allocations) under `policy`, measured
/// against `mix`; with a `learner`, against the mix it learns from what has been placed, as the
/// live scheduler does, every `LEARN_EVERY` placements.
#[allow(clippy::too_many_arguments)]
pub fn replay(
    cluster: &Snapshot,
    pods: &[TracePod],
    arrivals: &[Arrival],
    policy: &Policy,
    mix: &Mix,
    learner: Option<MixLearner>,
    shapes: &[TypicalShape],
    capacity_milli: u64,
) -> Outcome {
    replay_to_end(
        cluster,
        pods,
        arrivals,
        policy,
        mix,
        learner,
        shapes,
        capacity_milli,
    )
    .0
}

/// `replay`, also returning the cluster as the replay left it.
#[allow(clippy::too_many_arguments)]
pub fn replay_to_end(
    cluster: &Snapshot,
    pods: &[TracePod],
    arrivals: &[Arrival],
    policy: &Policy,
    mix: &Mix,
    mut learner: Option<MixLearner>,
    shapes: &[TypicalShape],
    capacity_milli: u64,
) -> (Outcome, Snapshot) {
    let mut snapshot = cluster.clone();
    let mut counts = ShapeCounts::default();
    if policy.protects(mix) {
        snapshot.track_capability(mix.protected.clone());
    }
    let mut out = Outcome::default();
    let mut failed = [(0usize, 0usize); 4];
    let (mut arrived, mut allocated) = (0u64, 0u64);
    let mut next_percent = 0u32;
    for arrival in arrivals {
        let pod = &pods[arrival.pod];
        let req = pod_request(pod, &arrival.name);
        arrived += pod.total_gpu_milli();
        // Learning is the leader's periodic work, not part of a placement's time.
        if let Some(learner) = &mut learner {
            if out.placements % LEARN_EVERY == 0 {
                learner.learn(&counts, &mut snapshot);
            }
        }
        let mix = learner.as_ref().map_or(mix, MixLearner::mix);
        let start = Instant::now();
        let decision = place(&snapshot, &req, policy, mix);
        out.placing += start.elapsed();
        out.placements += 1;
        match decision {
            Ok(d) => {
                allocated += d
                    .devices
                    .iter()
                    .map(|b| u64::from(b.share_milli))
                    .sum::<u64>();
                let alloc = allocation(&arrival.name, &req, &d);
                snapshot.add_allocation(&alloc);
                counts.add_allocation(&alloc);
            }
            Err(_) => {
                let k = Kind::ALL
                    .iter()
                    .position(|&k| k == Kind::of(pod))
                    .unwrap_or(0);
                failed[k].0 += 1;
                if arrived <= capacity_milli {
                    failed[k].1 += 1;
                }
            }
        }
        out.events.push((arrived, allocated));
        while u128::from(arrived) * 100 >= u128::from(next_percent) * u128::from(capacity_milli)
            && next_percent <= 130
        {
            out.fragmentation
                .push((next_percent, fragmentation(&snapshot, shapes)));
            next_percent += 1;
        }
    }
    out.failed = Kind::ALL
        .iter()
        .zip(failed)
        .map(|(&k, (all, by_full))| (k, all, by_full))
        .collect();
    (out, snapshot)
}
