//! Reconciles an inference service: as many replicas as desired, spread, each running the
//! spec's template. A template change rolls the replicas: new ones are added within
//! `max_surge`, old ones drained and removed as new ones pass readiness, never leaving fewer
//! than `desired - max_unavailable` serving. When no node has room for a surge replica (GPUs
//! are scarce) the rollout replaces in place, one replica at a time, and says so; a new
//! revision that never gets ready stalls the rollout with the old replicas still serving.
//!
//! Replica indices are identities, not positions: a new replica takes the lowest index free,
//! and one scaled away is the old, the unready, then the highest.

use std::collections::BTreeSet;
use std::time::Instant;

use uni_core::model::{
    revision, Allocation, EventType, InferenceServiceSpec, ServiceTemplate, Workload, WorkloadRef,
};
use uni_placement::{place, ReplicaRequest};

use super::pass::Pass;
use super::placing::{
    commit, delete, finish, free_port, held_for, new_allocation, preempt_for, Failure,
};
use super::status::object_ref;
use super::{admission, drain};
use crate::cache::State;

/// What a service has now, by template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: u32,
    pub surge: u32,
    pub unavailable: u32,
    /// Replicas running the current template, and of those, ready ones.
    pub current: u32,
    pub current_ready: u32,
    /// Replicas running an older one.
    pub old: u32,
    pub old_ready: u32,
}

/// What one pass does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// New replicas to place (current template).
    pub add: u32,
    pub remove_old_unready: u32,
    pub remove_old_ready: u32,
    /// Current replicas above desired (a scale-down).
    pub remove_current: u32,
}

/// The next step toward `desired` replicas of the current template, within the surge and
/// unavailability bounds (as a Deployment's rolling update counts them).
pub fn step(c: Counts) -> Step {
    let remove_current = c.current.saturating_sub(c.desired);
    if c.old == 0 {
        return Step {
            add: c.desired.saturating_sub(c.current),
            remove_current,
            ..Step::default()
        };
    }
    let total = c.current + c.old;
    let add = c
        .desired
        .saturating_sub(c.current)
        .min((c.desired + c.surge).saturating_sub(total));
    // Old replicas that are not ready serve nothing: they go at no cost. Ready ones go as
    // long as `desired - max_unavailable` stay ready (as a Deployment scales its old
    // replica set down); the room they leave is taken by new ones, within the surge.
    let remove_old_unready = c.old - c.old_ready;
    let available = c.current_ready + c.old_ready;
    let may_lose = available.saturating_sub(c.desired.saturating_sub(c.unavailable));
    let remove_old_ready = c.old_ready.min(may_lose);
    Step {
        add,
        remove_old_unready,
        remove_old_ready,
        remove_current,
    }
}

pub fn reconcile(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    spec: &InferenceServiceSpec,
    now: Instant,
) {
    let template = ServiceTemplate::of(spec);
    let hash = template.hash();
    record_revision(pass, st, r, w, &template);

    // Replicas placed before templates were recorded run the first recorded one.
    let unrecorded = w
        .status
        .revisions
        .first()
        .map_or(hash.as_str(), |x| x.hash.as_str())
        .to_string();
    let runs = |a: &Allocation| -> bool {
        let h = if a.template_hash.is_empty() {
            unrecorded.as_str()
        } else {
            a.template_hash.as_str()
        };
        h == hash
    };
    let mut taken = BTreeSet::new();
    let (mut current, mut old, mut draining) = (Vec::new(), Vec::new(), Vec::new());
    let mut leaving = 0;
    let allocs: Vec<Allocation> = st.allocations_of(r).into_iter().cloned().collect();
    for a in allocs {
        if !taken.insert(a.replica) {
            // A duplicate of a replica already running.
            delete(pass, st, &a.id);
            continue;
        }
        if a.notice.is_some() {
            leaving += 1;
        } else if a.draining.is_some() {
            if runs(&a) {
                draining.push(a);
            } else {
                leaving += 1;
            }
        } else if runs(&a) {
            current.push(a);
        } else {
            old.push(a);
        }
    }
    // Scaled up again before they stopped: draining replicas of the current template are
    // taken back before anything new is placed.
    let short = (spec.replicas.desired as usize).saturating_sub(current.len());
    for (i, a) in draining.into_iter().enumerate() {
        if i < short {
            drain::mark(pass, st, &a, None);
            current.push(Allocation {
                draining: None,
                ..a
            });
        } else {
            leaving += 1;
        }
    }
    let (current_ready, old_ready) = (ready_first(st, &mut current), ready_first(st, &mut old));
    let u = spec.rolling_update;
    let counts = Counts {
        desired: spec.replicas.desired,
        surge: u.max_surge,
        unavailable: u.max_unavailable,
        current: count(current.len()),
        current_ready,
        old: count(old.len()),
        old_ready,
    };
    let s = step(counts);
    // Old replicas go unready ones first; current ones (a scale-down) unready, then highest.
    let unready_old = old.split_off(old_ready as usize);
    for a in unready_old.iter().take(s.remove_old_unready as usize) {
        retire(pass, st, a);
    }
    for a in old.iter().take(s.remove_old_ready as usize) {
        retire(pass, st, a);
    }
    let mut surplus = current.clone();
    surplus.reverse();
    for a in surplus.iter().take(s.remove_current as usize) {
        retire(pass, st, a);
    }

    let rolling = counts.old > 0;
    let (placed, failed) = place_new(pass, st, r, w, &hash, &taken, s.add, rolling);
    let mut note = String::new();
    if rolling {
        let waiting_new = counts.current - current_ready;
        note = format!(
            "rolling to revision {}: {} of {} updated, {} ready",
            w.status.revision_of(&hash),
            counts.current,
            counts.desired,
            current_ready
        );
        if let Some(f) = &failed {
            // No room for a surge replica: replace in place, one at a time, once the last
            // replacement is done, and only for lack of room (not a hold for another
            // workload) with every slot filled, so it never goes below desired - 1.
            let full = counts.current + counts.old >= counts.desired;
            let idle = leaving == 0 && waiting_new == 0 && s.remove_old_ready == 0;
            if idle && full && placed == 0 && !f.held && old_ready > 0 {
                retire(pass, st, &old[0]);
                let msg = format!(
                    "no room for a surge replica ({}); replacing in place, one at a time",
                    f.message
                );
                pass.event(
                    object_ref(w),
                    EventType::Normal,
                    "RollingInPlace",
                    msg.clone(),
                );
                note = format!("{note}; {msg}");
            } else {
                note = format!("{note}; waiting for room: {}", f.message);
            }
        } else if waiting_new > 0 && s.remove_old_ready == 0 {
            note = format!("{note}; waiting for new replicas to become ready");
        }
        finish(pass, st, r, w, None, now);
    } else {
        finish(pass, st, r, w, failed, now);
    }
    if w.status.rollout != note {
        pass.update_status(st, r, |w, _| w.status.rollout = note);
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Orders `allocs` ready first (then by index); returns how many are ready.
fn ready_first(st: &State, allocs: &mut [Allocation]) -> u32 {
    allocs.sort_by_key(|a| (!drain::serving(st, a), a.replica));
    count(allocs.iter().filter(|a| drain::serving(st, a)).count())
}

/// A replica no longer wanted: a serving one drains first, one that serves nothing goes now.
fn retire(pass: &mut Pass<'_>, st: &mut State, a: &Allocation) {
    if drain::serving(st, a) {
        drain::mark(pass, st, a, Some(pass.now));
    } else {
        delete(pass, st, &a.id);
    }
}

/// Places `n` replicas of the current template at the lowest free indices; returns how many
/// it placed and why one did not fit. A surge replica of a rollout does not preempt
/// anything: the rollout replaces in place instead.
#[allow(clippy::too_many_arguments)]
fn place_new(
    pass: &mut Pass<'_>,
    st: &mut State,
    r: &WorkloadRef,
    w: &Workload,
    hash: &str,
    taken: &BTreeSet<u32>,
    n: u32,
    rolling: bool,
) -> (u32, Option<Failure>) {
    if n == 0 {
        return (0, None);
    }
    if let Some(f) = held_for(pass, st, r, w) {
        return (0, Some(f));
    }
    let mut placed = 0;
    let req = ReplicaRequest::from_workload(w);
    let free = (0u32..).filter(|i| !taken.contains(i)).take(n as usize);
    for replica in free {
        if pass.budget == 0 {
            st.mark_dirty(r.clone());
            return (placed, None);
        }
        let started = Instant::now();
        let decision = place(st.snapshot(), &req, pass.policy, pass.mix);
        pass.metrics
            .placement_duration
            .observe(started.elapsed().as_secs_f64());
        match decision {
            Ok(d) => {
                let mut alloc = new_allocation(w, replica, &req, &d, pass.now);
                alloc.template_hash = hash.to_string();
                if let Some((why, may_help)) =
                    admission::refusal(pass, st, w, &alloc.amounts(), false)
                {
                    let f = Failure::quota(why);
                    if rolling {
                        return (placed, Some(f));
                    }
                    return (
                        placed,
                        Some(preempt_for(pass, st, r, w, &req, 1, f, may_help)),
                    );
                }
                alloc.port = free_port(st, &alloc.node);
                commit(pass, st, alloc, w);
                placed += 1;
            }
            Err(u) if rolling => return (placed, Some(u.into())),
            Err(u) => {
                let f = preempt_for(pass, st, r, w, &req, 1, u.into(), true);
                return (placed, Some(f));
            }
        }
    }
    (placed, None)
}

/// Records the current template for a service that has no history (created before
/// revisions were kept): the API records every later one with the write that changes it.
fn record_revision(
    pass: &mut Pass<'_>,
    st: &State,
    r: &WorkloadRef,
    w: &Workload,
    template: &ServiceTemplate,
) {
    if !w.status.revisions.is_empty() {
        return;
    }
    pass.update_status(st, r, |w, now| {
        revision::record(&mut w.status.revisions, template, now);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(current: u32, current_ready: u32, old: u32, old_ready: u32) -> Counts {
        Counts {
            desired: 4,
            surge: 1,
            unavailable: 0,
            current,
            current_ready,
            old,
            old_ready,
        }
    }

    #[test]
    fn a_rollout_surges_then_replaces_as_new_replicas_get_ready() {
        // Start: one surge replica, nothing removed (all four old serve).
        assert_eq!(step(c(0, 0, 4, 4)).add, 1);
        assert_eq!(step(c(0, 0, 4, 4)).remove_old_ready, 0);
        // The surge replica is placed but not ready: wait.
        assert_eq!(step(c(1, 0, 4, 4)), Step::default());
        // Ready: one old goes, and the room it leaves is taken once it is gone.
        let s = step(c(1, 1, 4, 4));
        assert_eq!((s.add, s.remove_old_ready), (0, 1));
        let s = step(c(1, 1, 3, 3));
        assert_eq!((s.add, s.remove_old_ready), (1, 0));
        // The end: old all gone, no surge left over.
        assert_eq!(step(c(4, 4, 0, 0)), Step::default());
    }

    #[test]
    fn unready_old_replicas_go_first_and_availability_bounds_the_rest() {
        let s = step(c(1, 1, 4, 2));
        assert_eq!((s.remove_old_unready, s.remove_old_ready), (2, 0));
        // max_unavailable 2, no surge: two old go at once, then two new come.
        let mut k = c(0, 0, 4, 4);
        k.surge = 0;
        k.unavailable = 2;
        let s = step(k);
        assert_eq!((s.add, s.remove_old_ready), (0, 2));
        k.old = 2;
        k.old_ready = 2;
        assert_eq!(step(k).add, 2);
    }

    #[test]
    fn steady_services_scale_and_new_revisions_that_never_get_ready_stall() {
        let mut k = c(6, 6, 0, 0);
        assert_eq!(step(k).remove_current, 2);
        k.current = 1;
        k.current_ready = 1;
        assert_eq!(step(k).add, 3);
        // New replica never ready: the old ones all keep serving.
        for _ in 0..3 {
            assert_eq!(step(c(1, 0, 4, 4)).remove_old_ready, 0);
        }
    }
}
