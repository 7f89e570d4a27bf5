//! Select: walk the index for nodes that can fit, score their shapes, pick the best; gangs
//! reserve every member or none.

use std::borrow::Cow;

use uni_core::model::{Allocation, DeviceBinding};

use crate::filter;
use crate::index::{Group, NodeId};
use crate::mix::Mix;
use crate::node_state::NodeState;
use crate::policy::{Policy, TieBreak};
use crate::request::{GpuDemand, ModelFilter, ReplicaRequest};
use crate::score::{self, Best, Measures, NodeContext, PlacementContext};
use crate::shape::{self, Shape};
use crate::snapshot::Snapshot;
use crate::unschedulable::Unschedulable;

/// Where one replica goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub node: String,
    pub devices: Vec<DeviceBinding>,
    /// The policy's weighted score, 0..100.
    pub score: f64,
    /// Hourly price of what the replica takes: devices, compute and memory.
    pub usd_per_hour: f64,
}

/// One shape on one node, with its measures.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: NodeId,
    shape: Shape,
    measures: Measures,
}

/// The best decision for `req` under `policy`, measured against `mix`, or why no node can
/// take it.
pub fn place(
    snapshot: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    mix: &Mix,
) -> Result<Decision, Unschedulable> {
    let mut candidates = Vec::new();
    let counts = host_counts(snapshot, policy, mix);
    let ctx = PlacementContext::new(mix, &counts);
    let compute_first = compute_scarce(snapshot, policy, &ctx);
    let first_pass =
        |g: &Group| !policy.cpu_nodes_first || req.gpu.is_some() || g.models.is_empty();
    let walk = |pass: bool, out: &mut Vec<Candidate>| {
        for group in snapshot.index().groups().filter(|g| first_pass(g) == pass) {
            walk_group(snapshot, group, req, policy, &ctx, compute_first, out);
        }
    };
    walk(true, &mut candidates);
    if candidates.is_empty() && policy.cpu_nodes_first && req.gpu.is_none() {
        walk(false, &mut candidates);
    }
    if candidates.is_empty() {
        // Nothing fits where the index looked: scan every node to say why. Should the index
        // ever miss a feasible node, the scan still places on it.
        scan(snapshot, req, policy, &ctx, &mut candidates)?;
    }
    choose(snapshot, req, policy, &candidates).ok_or_else(|| Unschedulable {
        nodes: snapshot.len(),
        ..Unschedulable::default()
    })
}

/// One gang member reserved in the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Reserved {
    pub decision: Decision,
    pub allocation: Allocation,
    /// What the reservation replaced: an allocation with the same id, no longer recorded.
    pub replaced: Option<Allocation>,
}

/// Places every member of a gang and reserves each in `snapshot` (an allocation from
/// `make_alloc(member, decision)`), so later members see earlier ones; if any member fits
/// nowhere, every reservation is rolled back and the snapshot is as before.
pub fn place_gang(
    snapshot: &mut Snapshot,
    reqs: &[ReplicaRequest],
    policy: &Policy,
    mix: &Mix,
    mut make_alloc: impl FnMut(usize, &Decision) -> Allocation,
) -> Result<Vec<Reserved>, Unschedulable> {
    let mut placed: Vec<Reserved> = Vec::with_capacity(reqs.len());
    for (member, req) in reqs.iter().enumerate() {
        match place(snapshot, req, policy, mix) {
            Ok(decision) => {
                let allocation = make_alloc(member, &decision);
                let replaced = snapshot.allocation(&allocation.id).cloned();
                snapshot.add_allocation(&allocation);
                placed.push(Reserved {
                    decision,
                    allocation,
                    replaced,
                });
            }
            Err(why) => {
                for r in placed.iter().rev() {
                    snapshot.remove_allocation(&r.allocation);
                    if let Some(previous) = &r.replaced {
                        snapshot.add_allocation(previous);
                    }
                }
                return Err(why);
            }
        }
    }
    Ok(placed)
}

/// Scores the nodes of `group` that can fit, tightest first, up to the policy's bound;
/// `compute_first`: equally tight accelerator nodes with the most free compute first.
fn walk_group(
    snapshot: &Snapshot,
    group: &Group,
    req: &ReplicaRequest,
    policy: &Policy,
    ctx: &PlacementContext,
    compute_first: bool,
    out: &mut Vec<Candidate>,
) {
    if !req.allows_class(&group.class) {
        return;
    }
    let limit = policy.max_candidates.unwrap_or(usize::MAX);
    let mut feasible = 0;
    let mut visit = |id: NodeId| -> bool {
        if let Some(slot) = snapshot.slot(id) {
            if filter::admits(&slot.node, req).is_ok()
                && consider(id, &slot.node, req, policy, ctx, out)
            {
                feasible += 1;
            }
        }
        feasible < limit
    };
    match &req.gpu {
        None => {
            for &(_, id) in group.by_compute.range((req.compute_milli, 0)..) {
                if !visit(id) {
                    break;
                }
            }
        }
        Some(gpu) => {
            let models = gpu.models();
            if !group.models.iter().any(|(m, raw)| models.allows(m, raw)) {
                return;
            }
            match gpu {
                GpuDemand::Fraction {
                    milli,
                    memory_bytes,
                    tflops,
                    ..
                } => {
                    let least = least_share(group, *milli, *memory_bytes, *tflops);
                    for id in group.by_frac_from(least, compute_first) {
                        if !visit(id) {
                            break;
                        }
                    }
                }
                GpuDemand::Whole {
                    memory_bytes_total,
                    tflops_total,
                    ..
                } => {
                    // Not even the group's largest, fastest device is enough as one of the
                    // most devices the request may take: no node of the group can fit, so
                    // none is visited.
                    let most = *gpu.device_counts().end();
                    let any_model = ModelFilter::default();
                    if !shape::fits_whole(
                        &group.largest_device(),
                        &any_model,
                        *memory_bytes_total,
                        *tflops_total,
                        most,
                    ) {
                        return;
                    }
                    let least = *gpu.device_counts().start();
                    for id in group.by_whole_from(least, compute_first) {
                        if !visit(id) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Whether a bounded policy should see the accelerator nodes with compute to spare first: the
/// accelerator nodes have less free compute per free accelerator than the policy's mix asks for,
/// so compute, not accelerators, runs out (BENCHMARKS.md, "Why each part is there").
fn compute_scarce(snapshot: &Snapshot, policy: &Policy, ctx: &PlacementContext) -> bool {
    policy.max_candidates.is_some()
        && ctx
            .typical
            .host_per_milli
            .is_some_and(|(compute, _)| snapshot.index().compute_scarce(compute))
}

/// The smallest share a fraction can need on any device of `group`: on its largest, fastest
/// device.
fn least_share(group: &Group, milli: Option<u32>, memory: u64, tflops: f64) -> u32 {
    // `None`: not even the largest device fits, so no node of the group can.
    shape::fraction_share(&group.largest_device(), milli, memory, tflops).unwrap_or(u32::MAX)
}

/// Adds every shape `req` may take on `node` to `out` (the best over all nodes and shapes wins
/// in `choose`, with costs normalized over all of them); false when none fits.
fn consider(
    id: NodeId,
    node: &NodeState,
    req: &ReplicaRequest,
    policy: &Policy,
    placement: &PlacementContext,
    out: &mut Vec<Candidate>,
) -> bool {
    let ctx = NodeContext::new(node, policy, placement);
    let before = out.len();
    shape::for_each(node, req, |shape| {
        out.push(Candidate {
            id,
            shape,
            measures: score::measure(node, &ctx, &shape, req, policy),
        });
    });
    out.len() > before
}

/// The policy's `cpu_nodes_first` over scanned candidates: CPU-only work keeps only the
/// nodes without accelerators, if any fits.
fn cpu_nodes_first(
    snapshot: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    candidates: &mut Vec<Candidate>,
) {
    if !policy.cpu_nodes_first || req.gpu.is_some() {
        return;
    }
    let plain = |c: &Candidate| {
        snapshot
            .slot(c.id)
            .is_some_and(|s| s.node.devices.is_empty())
    };
    if candidates.iter().any(plain) {
        candidates.retain(plain);
    }
}

/// Every node, every filter: candidates where they fit (with the policy's preference for
/// CPU nodes applied), reasons where they do not.
fn scan(
    snapshot: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    ctx: &PlacementContext,
    out: &mut Vec<Candidate>,
) -> Result<(), Unschedulable> {
    let mut why = Unschedulable {
        nodes: snapshot.len(),
        ..Unschedulable::default()
    };
    for (id, node) in snapshot.slots() {
        match filter::check(node, req) {
            Ok(()) => {
                if !consider(id, node, req, policy, ctx, out) {
                    *why.reasons
                        .entry("insufficient accelerators".to_string())
                        .or_default() += 1;
                }
            }
            Err(reason) => *why.reasons.entry(reason.to_string()).or_default() += 1,
        }
    }
    if out.is_empty() {
        return Err(why);
    }
    cpu_nodes_first(snapshot, req, policy, out);
    Ok(())
}

/// How many nodes can host each of the mix's protected shapes (none when the policy protects
/// none).
fn host_counts<'a>(snapshot: &'a Snapshot, policy: &Policy, mix: &Mix) -> Cow<'a, [u32]> {
    if policy.protects(mix) {
        snapshot.capable_counts(&mix.protected)
    } else {
        Cow::Borrowed(&[])
    }
}

/// The best-scoring candidate. On each node the best of its shapes (by score, then by the
/// scorer's device preference, then the first); among nodes, the best score, equals broken by
/// the policy's `TieBreak` (`First`: tightest fit, earliest group).
fn choose(
    snapshot: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    candidates: &[Candidate],
) -> Option<Decision> {
    let mut best = Best::NONE;
    for c in candidates {
        best.include(&c.measures);
    }
    // (total, tie key, candidate); the key is drawn only when scores tie.
    let mut winner: Option<(f64, Option<u64>, &Candidate)> = None;
    let mut i = 0;
    while i < candidates.len() {
        // A node's shapes are contiguous (`consider` adds them together).
        let id = candidates[i].id;
        let mut node_best: Option<(f64, &Candidate)> = None;
        while i < candidates.len() && candidates[i].id == id {
            let c = &candidates[i];
            let total = score::total(&c.measures, &best, req, policy);
            let better = node_best.is_none_or(|(t, b)| {
                total > t || (total == t && c.measures.within_node > b.measures.within_node)
            });
            if better {
                node_best = Some((total, c));
            }
            i += 1;
        }
        let Some((total, c)) = node_best else {
            continue;
        };
        match &mut winner {
            None => winner = Some((total, None, c)),
            Some((w, key, wc)) => {
                if total > *w {
                    winner = Some((total, None, c));
                } else if total == *w {
                    if let TieBreak::Seeded(seed) = policy.tie_break {
                        let draw = |c: &Candidate| {
                            snapshot
                                .slot(c.id)
                                .map_or(0, |s| score::random::rank(seed, &s.node.name))
                        };
                        let theirs = *key.get_or_insert_with(|| draw(wc));
                        let ours = draw(c);
                        if ours > theirs {
                            winner = Some((total, Some(ours), c));
                        }
                    }
                }
            }
        }
    }
    let (score, _, c) = winner?;
    let node = &snapshot.slot(c.id)?.node;
    Some(Decision {
        node: node.name.clone(),
        devices: c.shape.bindings(node),
        score,
        usd_per_hour: c.measures.usd_per_hour,
    })
}

/// `place` without the index: every node filtered and scored (tests compare the two).
#[cfg(test)]
pub(crate) fn place_by_scan(
    snapshot: &Snapshot,
    req: &ReplicaRequest,
    policy: &Policy,
    mix: &Mix,
) -> Result<Decision, Unschedulable> {
    let mut candidates = Vec::new();
    let counts = host_counts(snapshot, policy, mix);
    let ctx = PlacementContext::new(mix, &counts);
    scan(snapshot, req, policy, &ctx, &mut candidates)?;
    choose(snapshot, req, policy, &candidates).ok_or_else(|| Unschedulable {
        nodes: snapshot.len(),
        ..Unschedulable::default()
    })
}
