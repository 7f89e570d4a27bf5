//! One pass under way: the writes it has decided so far and what its steps share (the time,
//! the placement budget, the policy and mix, the backoffs, the events already written).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use tracing::warn;
use uni_core::model::{
    Allocation, Event, EventType, ObjectMeta, ObjectRef, ResourceAmounts, UnixMillis, Workload,
    WorkloadRef,
};
use uni_core::store::keys::{EventKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, Compare, CompareOp, LeaseId, Txn, TxnOp};
use uni_placement::{Mix, Policy};

use super::backoff::Backoffs;
use super::events::EventLog;
use super::expiry::Expiries;
use super::plan::Preemption;
use super::preempt::{running, Running, MAX_PER_PASS};
use crate::cache::State;
use crate::metrics::Metrics;

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

/// Where one pass stands, shared by the steps that build it.
pub struct Pass<'a> {
    pub plan: Plan,
    /// Replicas the pass may still place.
    pub budget: usize,
    pub now: UnixMillis,
    /// How long a NotReady node keeps its allocations before they are placed elsewhere.
    pub node_grace: Duration,
    pub policy: &'a Policy,
    pub mix: &'a Mix,
    pub backoffs: &'a mut Backoffs,
    /// Finished jobs waiting for their time-to-live.
    pub expiries: &'a mut Expiries,
    /// Kept that long after finishing unless the job says otherwise; `None`: for ever.
    pub finished_ttl: Option<Duration>,
    pub events: &'a mut EventLog,
    /// Lease events are attached to, so they expire; 0 for none.
    pub event_lease: LeaseId,
    pub metrics: &'a Metrics,
    /// The fleet's schedulable capacity when the pass began: what queue shares are of.
    pub capacity: ResourceAmounts,
    /// Workloads this pass may still make room for by preemption.
    pub preemptions_left: usize,
    /// What preemption may do.
    pub preemption: Preemption,
    /// Waiting this long (since submission) makes a workload starving: capacity is held for it.
    pub starvation_after: Duration,
    /// The starving workload capacity is held for, per queue, and since when (kept across
    /// passes).
    pub starving: &'a mut BTreeMap<String, (WorkloadRef, UnixMillis)>,
    /// What may be preempted, found once per pass when first needed.
    running: Option<Rc<Vec<Running>>>,
    /// Status writes this pass has queued, by workload: the txn's index in `plan.singles`
    /// and the workload as written, so a second change builds on the first instead of
    /// racing it on the same compare.
    statuses: HashMap<WorkloadRef, (usize, Workload)>,
}

impl<'a> Pass<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        budget: usize,
        node_grace: Duration,
        policy: &'a Policy,
        mix: &'a Mix,
        backoffs: &'a mut Backoffs,
        expiries: &'a mut Expiries,
        events: &'a mut EventLog,
        metrics: &'a Metrics,
        starving: &'a mut BTreeMap<String, (WorkloadRef, UnixMillis)>,
    ) -> Self {
        Self {
            plan: Plan::default(),
            budget,
            now: UnixMillis::now(),
            node_grace,
            policy,
            mix,
            backoffs,
            expiries,
            finished_ttl: None,
            events,
            event_lease: 0,
            metrics,
            capacity: ResourceAmounts::ZERO,
            preemptions_left: MAX_PER_PASS,
            preemption: Preemption::default(),
            starvation_after: Duration::MAX,
            starving,
            running: None,
            statuses: HashMap::new(),
        }
    }

    /// The workloads that may be preempted, as of the first call in this pass (or since
    /// [`Pass::invalidate_running`]).
    pub fn running(&mut self, st: &State) -> Rc<Vec<Running>> {
        self.running
            .get_or_insert_with(|| Rc::new(running(st)))
            .clone()
    }

    /// Forgets the list of what may be preempted (after telling some to stop).
    pub fn invalidate_running(&mut self) {
        self.running = None;
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
        let key = match EventKey::new(namespace.clone(), id.clone()) {
            Ok(k) => k.format(),
            Err(e) => {
                warn!(object = %involved.name, reason, error = %e, "event not recorded: no valid key");
                return;
            }
        };
        let (count, first) = self.events.record(&key, self.now);
        let event = Event {
            meta: ObjectMeta::namespaced(namespace, id),
            involved,
            event_type,
            reason: reason.to_string(),
            message,
            first_seen: first,
            last_seen: self.now,
            count,
            source: uni_core::model::EventSource {
                component: "uni-scheduler".into(),
                node: String::new(),
            },
        };
        match codec::encode(&event) {
            Ok(bytes) => self.plan.singles.push(Txn::new().and_then([TxnOp::Put {
                key,
                value: bytes,
                lease: self.event_lease,
            }])),
            Err(e) => warn!(key, error = %e, "event not recorded: cannot encode it"),
        }
    }

    /// Writes a workload (its status, or the autoscaler's replica count) if `change` alters
    /// it, compared on the revision read; changes to one workload in a pass make one write.
    pub fn update_status(
        &mut self,
        st: &State,
        r: &WorkloadRef,
        change: impl FnOnce(&mut Workload, UnixMillis),
    ) {
        let Some(stored) = st.workload(r) else {
            return;
        };
        let pending = self.statuses.get(r);
        let base = pending.map_or(&stored.value, |(_, w)| w);
        let mut w = base.clone();
        change(&mut w, self.now);
        if w == *base {
            return;
        }
        let key = match WorkloadKey::new(r.namespace.clone(), r.name.clone()) {
            Ok(k) => k.format(),
            Err(e) => {
                warn!(workload = %r, error = %e, "status not written: no valid key");
                return;
            }
        };
        match codec::encode(&w) {
            Ok(bytes) => {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        stored.mod_revision,
                    )])
                    .and_then([TxnOp::put(key, bytes)]);
                let at = match self.statuses.get(r) {
                    Some((at, _)) => {
                        self.plan.singles[*at] = txn;
                        *at
                    }
                    None => {
                        self.plan.singles.push(txn);
                        self.plan.singles.len() - 1
                    }
                };
                self.statuses.insert(r.clone(), (at, w));
            }
            Err(e) => warn!(workload = %r, error = %e, "status not written: cannot encode it"),
        }
    }
}
