//! One scheduling pass, run by the leader under the cache lock: it takes the workloads whose
//! desired and actual state differ, in priority order, decides placements (reserving them
//! in the snapshot at once), evictions and status changes, and returns them as a [`Plan`]
//! for the committer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uni_core::model::{
    condition::{set_condition, types},
    Allocation, Condition, ConditionStatus, Event, EventType, ObjectMeta, ObjectRef, UnixMillis,
    Workload, WorkloadPhase,
};
use uni_core::store::keys::{EventKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, Compare, CompareOp, Txn, TxnOp};

use super::backoff::Backoffs;
use super::{lifecycle, workload};
use crate::cache::State;
use crate::metrics::Metrics;
use crate::placement::learn::MixLearner;
use crate::placement::select::Policy;
use crate::placement::snapshot::WorkloadRef;

/// Writes decided by one pass. Puts and deletes are already applied to the cache's state.
#[derive(Default)]
pub struct Plan {
    /// New allocations, each with its workload's creation time (unix millis).
    pub puts: Vec<(Allocation, i64)>,
    pub deletes: Vec<Allocation>,
    /// Writes with compares of their own (status, events, node lifecycle): one txn each.
    pub singles: Vec<Txn>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.singles.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// How long a NotReady node keeps its allocations before they are placed elsewhere.
    pub node_grace: Duration,
    /// Most replicas placed in one pass, so commits start early under a flood.
    pub max_placements: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            node_grace: Duration::from_secs(30),
            max_placements: 512,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

pub struct Planner {
    pub config: PlanConfig,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    pub backoffs: Backoffs,
    /// Keeps the policy's typical shapes those of what the cluster runs.
    mix: MixLearner,
    /// Events written so far, by key: (count, first seen), so repeats update one event.
    events: HashMap<String, (u32, UnixMillis)>,
}

/// Where one pass stands, shared by the helpers that build it.
pub struct Pass<'a> {
    pub plan: Plan,
    pub budget: usize,
    pub now: UnixMillis,
    pub planner: &'a mut Planner,
}

impl Planner {
    pub fn new(config: PlanConfig, policy: Policy, metrics: Arc<Metrics>) -> Self {
        let backoffs = Backoffs::new(config.backoff_initial, config.backoff_max);
        Self {
            config,
            mix: MixLearner::new(&policy),
            policy,
            metrics,
            backoffs,
            events: HashMap::new(),
        }
    }

    /// Runs one pass. Returns the plan and when the next pass is due even if nothing changes.
    pub fn plan(&mut self, st: &mut State, now: Instant) -> (Plan, Option<Instant>) {
        self.mix
            .refresh(&mut self.policy, &st.mix, &mut st.snapshot, now);
        let wall = UnixMillis::now();
        let budget = self.config.max_placements;
        let mut pass = Pass {
            plan: Plan::default(),
            budget,
            now: wall,
            planner: self,
        };
        let node_wake = lifecycle::run(&mut pass, st, now);

        if std::mem::take(&mut st.capacity_changed) {
            pass.planner.backoffs.release_all(&mut st.dirty);
        }
        pass.planner.backoffs.release_due(now, &mut st.dirty);

        let mut queue: Vec<WorkloadRef> = std::mem::take(&mut st.dirty).into_iter().collect();
        // Highest priority first, then oldest first, as a fair FIFO within a priority.
        queue.sort_by_cached_key(|r| {
            st.workloads.get(r).map_or((i32::MIN, 0), |w| {
                (-w.value.spec.priority(), w.value.meta.created.0)
            })
        });
        let mut rest = queue.into_iter();
        for r in rest.by_ref() {
            workload::reconcile(&mut pass, st, &r, now);
            if pass.budget == 0 {
                break;
            }
        }
        // Out of budget: the rest waits for the next pass.
        st.dirty.extend(rest);

        let depth = st.dirty.len() + pass.planner.backoffs.len();
        pass.planner.metrics.queue_depth.set(depth as i64);
        let wake = [node_wake, pass.planner.backoffs.next_due()]
            .into_iter()
            .flatten()
            .min();
        (pass.plan, wake)
    }
}

impl Pass<'_> {
    /// Records (or repeats) an event about an object, written with the plan.
    pub fn event(
        &mut self,
        involved: ObjectRef,
        event_type: EventType,
        reason: &str,
        message: String,
    ) {
        let id = format!("{}.{}", involved.name, reason.to_ascii_lowercase());
        let namespace = if involved.namespace.is_empty() {
            "default".to_string()
        } else {
            involved.namespace.clone()
        };
        let Ok(key) = EventKey::new(namespace.clone(), id.clone()) else {
            return;
        };
        let key = key.format();
        let (count, first) = self
            .planner
            .events
            .entry(key.clone())
            .and_modify(|(c, _)| *c += 1)
            .or_insert((1, self.now));
        let event = Event {
            meta: ObjectMeta::namespaced(namespace, id),
            involved,
            event_type,
            reason: reason.to_string(),
            message,
            first_seen: *first,
            last_seen: self.now,
            count: *count,
            source: uni_core::model::EventSource {
                component: "uni-scheduler".into(),
                node: String::new(),
            },
        };
        if let Ok(bytes) = codec::encode(&event) {
            self.plan
                .singles
                .push(Txn::new().and_then([TxnOp::put(key, bytes)]));
        }
    }

    /// Writes a workload's status if `change` alters it, compared on the revision read.
    pub fn update_status(
        &mut self,
        st: &State,
        r: &WorkloadRef,
        change: impl FnOnce(&mut Workload, UnixMillis),
    ) {
        let Some(stored) = st.workloads.get(r) else {
            return;
        };
        let mut w = stored.value.clone();
        change(&mut w, self.now);
        if w.status == stored.value.status {
            return;
        }
        let Ok(key) = WorkloadKey::new(r.namespace.clone(), r.name.clone()) else {
            return;
        };
        let key = key.format();
        if let Ok(bytes) = codec::encode(&w) {
            self.plan.singles.push(
                Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        stored.mod_revision,
                    )])
                    .and_then([TxnOp::put(key, bytes)]),
            );
        }
    }
}

/// Sets the Unschedulable condition (or clears it) and the matching phase and reason.
pub fn set_schedulable(w: &mut Workload, now: UnixMillis, unschedulable: Option<&str>) {
    let generation = w.meta.generation;
    let condition = match unschedulable {
        Some(message) => Condition::new(
            types::UNSCHEDULABLE,
            ConditionStatus::True,
            "Unschedulable",
            message,
        ),
        None => Condition::new(
            types::UNSCHEDULABLE,
            ConditionStatus::False,
            "Scheduled",
            "",
        ),
    };
    set_condition(
        &mut w.status.conditions,
        Condition {
            observed_generation: generation,
            ..condition
        },
        now,
    );
    w.status.observed_generation = generation;
    match unschedulable {
        Some(message) => {
            w.status.reason = "Unschedulable".into();
            w.status.message = message.to_string();
        }
        None if w.status.reason == "Unschedulable" => {
            w.status.reason.clear();
            w.status.message.clear();
            if w.status.phase == WorkloadPhase::Pending {
                w.status.phase = WorkloadPhase::Scheduled;
            }
        }
        None => {}
    }
}

pub fn object_ref(w: &Workload) -> ObjectRef {
    ObjectRef {
        kind: w.kind().to_string(),
        namespace: w.meta.namespace.clone(),
        name: w.meta.name.clone(),
        uid: w.meta.uid.clone(),
    }
}
