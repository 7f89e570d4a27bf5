//! Making room for a workload that cannot be placed, by stopping others:
//! - within its queue, preemptible work of lower priority (and, for the one workload of the
//!   queue that capacity is held for since it waited past the starvation bound, preemptible
//!   work of its own priority submitted after it and placed since the room was held);
//! - across queues, only work its queue runs on borrowed capacity, and only so that the
//!   preempting queue gets its guarantee (see [`QueueTree::may_reclaim_from`]).
//!
//! Why this cannot loop: within a queue a victim is strictly after its preemptor in the
//! queue's order (priority, then submission), so it can never preempt its preemptor back;
//! across queues the preemptor's queue ends within its guarantee and the victim's queue stays
//! at or above its own, so the victim's queue, asking for the capacity back, would go beyond
//! its guarantee and is not allowed to reclaim. A workload that is waiting for its victims to
//! stop preempts nothing more, and stopping work is never chosen again.
//!
//! Victims are told to stop (a [`StopNotice`] on their allocations, which their agents turn
//! into the notice file, SIGTERM and SIGKILL at the deadline) and keep their capacity until
//! they have stopped; `stopping` then removes them and the preemptor, first in the next
//! pass's order, takes the room.

use std::collections::BTreeMap;

use uni_core::model::{
    Allocation, EventType, ResourceAmounts, StopNotice, UnixMillis, Workload, WorkloadRef,
    WorkloadSpec,
};
use uni_core::store::{codec, Compare, CompareOp, Txn, TxnOp};
use uni_placement::tenancy::{choose, tree::describe, Candidate, QueueTree};
use uni_placement::{place, ReplicaRequest};

use super::admission::tree;
use super::commit::allocation_key;
use super::pass::Pass;
use super::plan::Preemption;
use super::status::object_ref;
use crate::cache::State;

/// How long an inference replica has to stop after its notice.
pub const INFERENCE_GRACE_SECONDS: u32 = 30;
/// Most workloads one pass makes room for: choosing victims tries placements.
pub const MAX_PER_PASS: usize = 8;

/// Why a victim is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// For higher-priority work of its own queue.
    Preempted,
    /// Its queue borrowed the capacity; another queue takes back its guarantee.
    Reclaimed,
    /// An elastic gang restarts smaller (or larger) instead of stopping.
    Resized,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preempted => "Preempted",
            Self::Reclaimed => "Reclaimed",
            Self::Resized => "Resized",
        }
    }
}

/// A workload with allocations, none of them stopping: what may be preempted.
#[derive(Debug, Clone)]
pub struct Running {
    pub r: WorkloadRef,
    pub queue: String,
    pub priority: i32,
    pub preemptible: bool,
    pub created: i64,
    /// Training: fewest workers.
    pub min_workers: Option<u32>,
    pub grace_seconds: u32,
    /// Its allocations, by replica.
    pub allocs: Vec<Allocation>,
}

impl Running {
    fn started(&self) -> i64 {
        self.allocs.iter().map(|a| a.created.0).min().unwrap_or(0)
    }
}

/// Every workload with allocations none of which is stopping.
pub fn running(st: &State) -> Vec<Running> {
    let mut groups: BTreeMap<WorkloadRef, Vec<Allocation>> = BTreeMap::new();
    for a in st.allocations() {
        groups
            .entry(WorkloadRef::of(a))
            .or_default()
            .push(a.clone());
    }
    groups
        .into_iter()
        .filter(|(_, allocs)| allocs.iter().all(|a| a.notice.is_none()))
        .filter_map(|(r, mut allocs)| {
            let w = &st.workload(&r)?.value;
            allocs.sort_by_key(|a| a.replica);
            let (min_workers, grace_seconds) = match &w.spec {
                WorkloadSpec::Training(t) => (Some(t.workers.min.max(1)), t.grace_period_seconds),
                WorkloadSpec::Inference(_) => (None, INFERENCE_GRACE_SECONDS),
            };
            Some(Running {
                queue: w.spec.queue().to_string(),
                priority: w.spec.priority(),
                preemptible: w.spec.preemptible(),
                created: w.meta.created.0,
                min_workers,
                grace_seconds,
                allocs,
                r,
            })
        })
        .collect()
}

/// One way to free room: the allocations it frees and what stopping it means.
struct Choice {
    victim: usize,
    /// Allocations freed for the fit test (a shrink frees the highest ranks).
    frees: Vec<usize>,
    amounts: ResourceAmounts,
    reason: Reason,
    /// A shrink: the gang's size afterwards.
    shrink_to: Option<u32>,
}

/// Whom `w` (which could not be placed) may stop, and how.
fn options(
    t: &QueueTree,
    w: &Workload,
    extra: ResourceAmounts,
    held_since: Option<UnixMillis>,
    running: &[Running],
    shrink: bool,
) -> Vec<Choice> {
    let queue = w.spec.queue();
    let reclaim = t.within_guarantee(queue, extra);
    let (priority, created) = (w.spec.priority(), w.meta.created.0);
    let mut out = Vec::new();
    for (i, v) in running.iter().enumerate() {
        if v.r.namespace == w.meta.namespace && v.r.name == w.meta.name {
            continue;
        }
        let reason = if v.queue == queue {
            let after = v.priority < priority
                || held_since.is_some_and(|since| {
                    v.priority == priority && v.created > created && v.started() >= since.0
                });
            if !(v.preemptible && after) {
                continue;
            }
            Reason::Preempted
        } else if reclaim {
            Reason::Reclaimed
        } else {
            continue;
        };
        let amounts_of = |allocs: &[Allocation]| {
            allocs.iter().fold(ResourceAmounts::ZERO, |acc, a| {
                acc.saturating_add(&a.amounts())
            })
        };
        let allowed = |amounts: &ResourceAmounts| {
            reason != Reason::Reclaimed || t.may_reclaim_from(&v.queue, queue, *amounts)
        };
        match v.min_workers {
            // Inference: each replica on its own.
            None => {
                for (j, a) in v.allocs.iter().enumerate() {
                    let amounts = a.amounts();
                    if allowed(&amounts) {
                        out.push(Choice {
                            victim: i,
                            frees: vec![j],
                            amounts,
                            reason,
                            shrink_to: None,
                        });
                    }
                }
            }
            Some(min) => {
                let n = v.allocs.len() as u32;
                // Shrinks first (smallest first), then the whole gang.
                for k in (min..n).rev().filter(|_| shrink) {
                    let freed = &v.allocs[k as usize..];
                    let amounts = amounts_of(freed);
                    if allowed(&amounts) {
                        out.push(Choice {
                            victim: i,
                            frees: (k as usize..v.allocs.len()).collect(),
                            amounts,
                            reason: Reason::Resized,
                            shrink_to: Some(k),
                        });
                    }
                }
                let amounts = amounts_of(&v.allocs);
                if allowed(&amounts) {
                    out.push(Choice {
                        victim: i,
                        frees: (0..v.allocs.len()).collect(),
                        amounts,
                        reason,
                        shrink_to: None,
                    });
                }
            }
        }
    }
    out
}

/// Work lost if `v` stops now: device milli-seconds (compute, without devices) since it
/// started. A resized gang restarts, so it loses as much.
fn lost(v: &Running, now: UnixMillis) -> u64 {
    let ran = u64::try_from(now.0 - v.started()).unwrap_or(0);
    let held = v.allocs.iter().fold(ResourceAmounts::ZERO, |acc, a| {
        acc.saturating_add(&a.amounts())
    });
    let size = if held.device_milli > 0 {
        held.device_milli
    } else {
        held.compute_milli / 1000
    };
    ran.saturating_mul(size)
}

/// Tries to make room for `workers` replicas of `req` (of `w`): chooses victims and tells
/// them to stop. Returns what it did, for the workload's status, or `None` if stopping
/// others would not help.
#[allow(clippy::too_many_arguments)]
pub fn make_room(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    req: &ReplicaRequest,
    workers: u32,
    held_since: Option<UnixMillis>,
) -> Option<String> {
    if pass.preemptions_left == 0 || pass.preemption == Preemption::Never {
        return None;
    }
    let one = req.least_amounts();
    let extra = (1..workers).fold(one, |acc, _| acc.saturating_add(&one));
    let t = tree(st, pass.capacity);
    let running = pass.running(st);
    let running = &*running;
    let shrink = pass.preemption == Preemption::Shrink;
    let opts = options(&t, w, extra, held_since, running, shrink);
    if opts.is_empty() {
        return None;
    }
    pass.preemptions_left -= 1;
    let queue = w.spec.queue();
    let candidates: Vec<Candidate> = opts
        .iter()
        .map(|o| {
            let v = &running[o.victim];
            Candidate {
                group: o.victim,
                priority: v.priority,
                lost: lost(v, pass.now),
                started: v.started(),
                frees: o.frees.len() as u32,
            }
        })
        .collect();
    let (policy, mix) = (pass.policy, pass.mix);
    let fits = |set: &[usize]| {
        let mut freed: BTreeMap<&str, ResourceAmounts> = BTreeMap::new();
        for &c in set {
            let o = &opts[c];
            let q = running[o.victim].queue.as_str();
            let f = freed.entry(q).or_default();
            *f = f.saturating_add(&o.amounts);
        }
        let reclaims_ok = set.iter().all(|&c| {
            let q = running[opts[c].victim].queue.as_str();
            opts[c].reason != Reason::Reclaimed || t.may_reclaim_from(q, queue, freed[q])
        });
        let freed_list: Vec<(&str, ResourceAmounts)> = freed.into_iter().collect();
        if !reclaims_ok || t.admit(queue, extra, &freed_list).is_err() {
            return false;
        }
        // Room on nodes: take the freed allocations out, try, put them back.
        let released: Vec<Allocation> = set
            .iter()
            .flat_map(|&c| {
                let o = &opts[c];
                o.frees
                    .iter()
                    .map(|&j| running[o.victim].allocs[j].id.clone())
            })
            .filter_map(|id| st.release(&id))
            .collect();
        let ok = if workers <= 1 {
            place(st.snapshot(), req, policy, mix).is_ok()
        } else {
            let reqs = vec![req.clone(); workers as usize];
            match st.reserve_gang(&reqs, policy, mix, |i, d| Allocation {
                id: format!("trial.{i}"),
                node: d.node.clone(),
                devices: d.devices.clone(),
                compute_milli: req.compute_milli,
                memory_bytes: req.memory_bytes,
                ..Allocation::default()
            }) {
                Ok(members) => {
                    st.unreserve_gang(&members);
                    true
                }
                Err(_) => false,
            }
        };
        for a in released {
            st.reserve(a);
        }
        ok
    };
    let chosen = choose(&candidates, fits)?;
    let by = r.to_string();
    let mut names = Vec::new();
    for c in chosen {
        let o = &opts[c];
        let v = &running[o.victim];
        let message = match (o.reason, o.shrink_to) {
            (Reason::Resized, Some(k)) => format!(
                "shrinking from {} to {k} workers (restarting with WORLD_SIZE={k}) to make room \
                 for {by}",
                v.allocs.len()
            ),
            (Reason::Reclaimed, _) => format!(
                "reclaimed: queue {} runs this on capacity borrowed beyond its guarantee, and \
                 queue {queue} takes it back for {by}",
                v.queue
            ),
            _ => format!(
                "preempted by {by} (priority {} over {}) in queue {queue}",
                w.spec.priority(),
                v.priority
            ),
        };
        // A gang restarts whole (a shrink too, with its new size); a replica stops alone.
        let stopped: Vec<&Allocation> = if v.min_workers.is_some() {
            v.allocs.iter().collect()
        } else {
            o.frees.iter().map(|&j| &v.allocs[j]).collect()
        };
        let deadline = UnixMillis(pass.now.0 + i64::from(v.grace_seconds) * 1000);
        let hours = lost(v, pass.now) as f64 / 1000.0 / 3_600_000.0;
        pass.metrics
            .preemptions
            .with_label_values(&[o.reason.as_str()])
            .inc();
        pass.metrics
            .preempted_device_hours
            .with_label_values(&[o.reason.as_str()])
            .inc_by(hours);
        let notice = StopNotice {
            reason: o.reason.as_str().to_string(),
            message: message.clone(),
            by: by.clone(),
            deadline,
            resize_to: o.shrink_to,
        };
        tell(pass, st, stopped.into_iter().cloned().collect(), &notice);
        if let Some(vw) = st.workload(&v.r).map(|s| s.value.clone()) {
            pass.event(
                object_ref(&vw),
                EventType::Warning,
                o.reason.as_str(),
                message,
            );
        }
        names.push(v.r.to_string());
    }
    pass.invalidate_running();
    let what = format!(
        "stopping {} to make room ({} of {}); placed once they stop",
        names.join(", "),
        describe(extra.to_array()),
        queue
    );
    pass.event(object_ref(w), EventType::Normal, "Preempting", what.clone());
    Some(what)
}

/// Most allocations told in one transaction: a compare and a put each, within etcd's
/// default of 128 operations with the leader fence.
const TOLD_PER_TXN: usize = 63;

/// Records `notice` on allocations (a gang's, or one replica's) and queues the writes: one
/// transaction for the whole gang, so no agent sees part of it told, written only if every
/// allocation is still there.
pub fn tell(pass: &mut Pass<'_>, st: &mut State, allocs: Vec<Allocation>, notice: &StopNotice) {
    for chunk in allocs.chunks(TOLD_PER_TXN) {
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        for a in chunk {
            let mut a = a.clone();
            a.notice = Some(notice.clone());
            let key = allocation_key(&a);
            let Ok(bytes) = codec::encode(&a) else {
                continue;
            };
            st.reserve(a);
            compares.push(Compare::version(key.clone(), CompareOp::Greater, 0));
            puts.push(TxnOp::put(key, bytes));
        }
        if !puts.is_empty() {
            pass.plan
                .singles
                .push(Txn::new().when(compares).and_then(puts));
        }
    }
}
