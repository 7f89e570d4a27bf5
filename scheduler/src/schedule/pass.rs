//! One pass under way: the writes it has decided so far and what its steps share (the time,
//! the placement budget, the policy and mix, the backoffs, the events already written).

use std::time::Duration;

use tracing::warn;
use uni_core::model::{
    Allocation, Event, EventType, ObjectMeta, ObjectRef, UnixMillis, Workload, WorkloadRef,
};
use uni_core::store::keys::{EventKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, Compare, CompareOp, LeaseId, Txn, TxnOp};
use uni_placement::{Mix, Policy};

use super::backoff::Backoffs;
use super::events::EventLog;
use super::expiry::Expiries;
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

    /// Writes a workload's status if `change` alters it, compared on the revision read.
    pub fn update_status(
        &mut self,
        st: &State,
        r: &WorkloadRef,
        change: impl FnOnce(&mut Workload, UnixMillis),
    ) {
        let Some(stored) = st.workload(r) else {
            return;
        };
        let mut w = stored.value.clone();
        change(&mut w, self.now);
        if w.status == stored.value.status {
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
            Ok(bytes) => self.plan.singles.push(
                Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        stored.mod_revision,
                    )])
                    .and_then([TxnOp::put(key, bytes)]),
            ),
            Err(e) => warn!(workload = %r, error = %e, "status not written: cannot encode it"),
        }
    }
}
