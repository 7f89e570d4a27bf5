//! Score plugins: pure functions of a node, a candidate shape and the request, each 0..100
//! (higher is better), combined as the policy's weighted mean; or, for the published
//! baselines, one baseline's own integer score (`Scorer`).

pub mod best_fit;
pub mod cost;
pub mod dot_product;
pub mod fgd;
pub mod fragmentation;
pub mod gap_value;
pub mod packing;
pub mod random;
pub mod scarcity;
pub mod spread;

use uni_core::model::Preference;

use crate::mix::Mix;
use crate::node_state::NodeState;
use crate::policy::{Policy, Scorer, TieBreak};
use crate::request::ReplicaRequest;
use crate::shape::Shape;

/// A candidate's measures before cost is normalized against the other candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measures {
    pub usd_per_hour: f64,
    pub tflops: f64,
    /// Weighted sum of the plugins that need no normalization (a baseline: its score).
    pub partial: f64,
    /// Orders the shapes of one node when their scores tie (which device a baseline takes).
    pub within_node: f64,
}

/// What cost scores are relative to: the cheapest and the fastest candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Best {
    pub usd_per_hour: f64,
    pub tflops: f64,
}

impl Best {
    pub const NONE: Best = Best {
        usd_per_hour: f64::INFINITY,
        tflops: 0.0,
    };

    pub fn include(&mut self, m: &Measures) {
        self.usd_per_hour = self.usd_per_hour.min(m.usd_per_hour);
        self.tflops = self.tflops.max(m.tflops);
    }
}

/// Per-node work shared by the node's shapes.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    pub fragmentation_before: f64,
    /// Which protected shapes the node can host now.
    pub capable_before: u64,
    pub placement: &'a PlacementContext<'a>,
}

/// What every candidate of one placement shares, worked out once.
#[derive(Debug, Clone, Copy)]
pub struct PlacementContext<'a> {
    pub mix: &'a Mix,
    /// How many nodes can host each of the mix's protected shapes (empty: none protected).
    pub capable_counts: &'a [u32],
    pub typical: fragmentation::TypicalMix<'a>,
}

impl<'a> PlacementContext<'a> {
    pub fn new(mix: &'a Mix, capable_counts: &'a [u32]) -> Self {
        Self {
            mix,
            capable_counts,
            typical: fragmentation::TypicalMix::new(&mix.typical),
        }
    }
}

impl<'a> NodeContext<'a> {
    pub fn new(node: &NodeState, policy: &Policy, placement: &'a PlacementContext<'a>) -> Self {
        let capable_before = if placement.capable_counts.is_empty() {
            0
        } else {
            scarcity::capable(node, &placement.mix.protected)
        };
        let fragmentation_before = match policy.scorer {
            Scorer::Weighted if policy.weights.fragmentation > 0.0 => {
                fragmentation::of_node(node, 0, 0, &Shape::CPU_ONLY, &placement.typical)
            }
            Scorer::Fgd => fgd::of_node(node, &Shape::CPU_ONLY, None, &placement.mix.typical),
            _ => 0.0,
        };
        Self {
            fragmentation_before,
            capable_before,
            placement,
        }
    }
}

pub fn measure(
    node: &NodeState,
    ctx: &NodeContext,
    shape: &Shape,
    req: &ReplicaRequest,
    policy: &Policy,
) -> Measures {
    let usd_per_hour = cost::usd_per_hour(node, shape, req);
    let (partial, within_node) = match policy.scorer {
        Scorer::Weighted => (weighted(node, ctx, shape, req, policy), 0.0),
        Scorer::Random => {
            let seed = match policy.tie_break {
                TieBreak::Seeded(seed) => seed,
                TieBreak::First => 0,
            };
            // A random node (kube-scheduler's RandomScore: one feasible node drawn per pod),
            // and a random device on it.
            let device = shape.devices.to_le_bytes();
            (
                random::unit(seed, &req.workload, node.name.as_bytes()),
                random::unit(seed, &req.workload, &device),
            )
        }
        Scorer::DotProduct => {
            let milli = dot_product::requested_milli(req, shape.share_milli, shape.count());
            (
                dot_product::score(node, req, milli, &policy.scale),
                best_fit::device_preference(node, shape),
            )
        }
        Scorer::BestFit => (
            best_fit::score(node, shape, req, &policy.scale),
            best_fit::device_preference(node, shape),
        ),
        Scorer::Fgd => {
            let after = fgd::of_node(node, shape, Some(req), &ctx.placement.mix.typical);
            (fgd::score(ctx.fragmentation_before, after), 0.0)
        }
    };
    Measures {
        usd_per_hour,
        tflops: shape.tflops,
        partial,
        within_node,
    }
}

fn weighted(
    node: &NodeState,
    ctx: &NodeContext,
    shape: &Shape,
    req: &ReplicaRequest,
    policy: &Policy,
) -> f64 {
    let w = &policy.weights;
    let mut partial = w.packing * packing::score(node, shape, req);
    if w.fragmentation > 0.0 {
        let at_risk = if ctx.capable_before == 0 {
            0.0
        } else {
            let shapes = &ctx.placement.mix.protected;
            let after =
                scarcity::capable_after(node, req.compute_milli, req.memory_bytes, shape, shapes);
            let counts = ctx.placement.capable_counts;
            scarcity::loss(ctx.capable_before & !after, shapes, counts)
        };
        let forgone =
            gap_value::WEIGHT * gap_value::forgone(&ctx.placement.mix.prices, node, shape, req);
        partial += w.fragmentation
            * fragmentation::score(
                node,
                ctx.fragmentation_before,
                shape,
                req,
                &ctx.placement.typical,
                at_risk + forgone,
            );
    }
    if req.spread && w.spread > 0.0 {
        partial += w.spread * spread::score(node, req);
    }
    partial
}

/// The weighted mean, 0..100 (a baseline: its own score).
pub fn total(m: &Measures, best: &Best, req: &ReplicaRequest, policy: &Policy) -> f64 {
    if policy.scorer != Scorer::Weighted {
        return m.partial;
    }
    let w = &policy.weights;
    // Price chooses among shapes when the request leaves the hardware to us; a bare device
    // count or share is indifferent to which device, so packing alone decides (weighing price
    // there fragments the cheap models first).
    let (cost, cost_weight) = match req.prefer {
        Preference::Speed => (cost::speed_score(m.tflops, best.tflops), w.cost),
        Preference::Cost if req.gpu.as_ref().is_none_or(|g| g.in_capability_terms()) => {
            (cost::score(m.usd_per_hour, best.usd_per_hour), w.cost)
        }
        Preference::Cost => (0.0, 0.0),
    };
    let spread = if req.spread { w.spread } else { 0.0 };
    let weights = cost_weight + w.packing + w.fragmentation + spread;
    if weights <= 0.0 {
        return 0.0;
    }
    (m.partial + cost_weight * cost) / weights
}
