//! One scheduling pass, run by the leader under the cache lock: it takes the workloads whose
//! desired and actual state differ, in priority order, decides placements (reserving them
//! in the snapshot at once), evictions and status changes, and returns them as a [`Plan`]
//! for the committer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uni_core::model::{UnixMillis, WorkloadRef};
use uni_core::store::{KvStore, LeaseId};
use uni_placement::learn::MixLearner;
use uni_placement::Policy;

use super::autoscale::Autoscaler;
use super::backoff::Backoffs;
use super::elastic::Growth;
use super::events::EventLog;
use super::expiry::Expiries;
use super::order::Order;
use super::pass::{Pass, Plan};
use super::{drain, lifecycle, stopping, workload};
use crate::cache::State;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// How long a NotReady node keeps its allocations before they are placed elsewhere.
    pub node_grace: Duration,
    /// Most replicas placed in one pass, so commits start early under a flood.
    pub max_placements: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long an event is kept after its last occurrence.
    pub event_ttl: Duration,
    /// How long a finished training job is kept unless it says otherwise; `None`: for ever.
    pub finished_ttl: Option<Duration>,
    /// Waiting this long makes a workload starving: capacity is held for it against later
    /// work of its queue that is not preemptible.
    pub starvation_after: Duration,
    /// How long room must stay free before an elastic job grows into it; `None`: never.
    pub elastic_window: Option<Duration>,
    /// How queues take turns.
    pub queue_order: QueueOrder,
    /// What a workload that cannot fit may stop.
    pub preemption: Preemption,
}

/// How queues with work waiting take turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueOrder {
    /// A queue below its guarantee first, then the higher queue priority, then the smaller
    /// weighted dominant share beyond its guarantee.
    #[default]
    FairShare,
    /// A queue below its guarantee first, then by the priority and submission time of each
    /// queue's next workload (no fair share).
    Priority,
    /// By the submission time of each queue's next workload alone.
    Submission,
}

/// What preemption may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preemption {
    /// Stop victims, shrinking elastic gangs within their range when that frees enough.
    #[default]
    Shrink,
    /// Stop whole victims only.
    Whole,
    /// Never stop anything to make room.
    Never,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            node_grace: Duration::from_secs(30),
            max_placements: 512,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            event_ttl: Duration::from_secs(3600),
            finished_ttl: Some(Duration::from_secs(7 * 86_400)),
            starvation_after: Duration::from_secs(600),
            elastic_window: Some(Duration::from_secs(60)),
            queue_order: QueueOrder::FairShare,
            preemption: Preemption::Shrink,
        }
    }
}

pub struct Planner {
    pub config: PlanConfig,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    pub backoffs: Backoffs,
    expiries: Expiries,
    /// Keeps the mix placement measures against that of what the cluster runs.
    pub learner: MixLearner,
    /// Events written so far, so repeats update one event.
    events: EventLog,
    /// The lease events are written with, and when it was granted.
    event_lease: Option<(LeaseId, Instant)>,
    /// The starving workload capacity is held for, per queue.
    starving: BTreeMap<String, (WorkloadRef, UnixMillis)>,
    /// Elastic jobs that could grow, and since when.
    growth: Growth,
    /// What the autoscaler remembers of each service.
    autoscaler: Autoscaler,
}

impl Planner {
    pub fn new(config: PlanConfig, policy: Policy, metrics: Arc<Metrics>) -> Self {
        let backoffs = Backoffs::new(config.backoff_initial, config.backoff_max);
        Self {
            config,
            learner: MixLearner::generic(),
            policy,
            metrics,
            backoffs,
            expiries: Expiries::default(),
            events: EventLog::default(),
            event_lease: None,
            starving: BTreeMap::new(),
            growth: Growth::default(),
            autoscaler: Autoscaler::default(),
        }
    }

    /// Makes sure events have a lease to expire with. Events share one lease, granted for
    /// the TTL plus a tenth and replaced after a tenth, so each lives at least `event_ttl`
    /// after its last write (as kube-apiserver reuses event leases). Without a store the
    /// events of the next pass are written without one rather than lost.
    pub async fn refresh_event_lease(&mut self, store: &dyn KvStore) {
        let ttl = self.config.event_ttl;
        let reuse = ttl / 10;
        if self
            .event_lease
            .is_some_and(|(_, granted)| granted.elapsed() < reuse)
        {
            return;
        }
        match store.lease_grant(ttl + reuse).await {
            Ok(id) => self.event_lease = Some((id, Instant::now())),
            Err(e) => {
                tracing::warn!(error = %e, "no lease for events; writing them without one");
                self.event_lease = None;
            }
        }
    }

    /// Runs one pass. Returns the plan and when the next pass is due even if nothing changes.
    pub fn plan(&mut self, st: &mut State, now: Instant) -> (Plan, Option<Instant>) {
        self.plan_at(st, now, UnixMillis::now())
    }

    /// [`Planner::plan`] at a given time (`now` for timers, `wall` for what is stored), so a
    /// replay can run the planner on a clock of its own.
    pub fn plan_at(
        &mut self,
        st: &mut State,
        now: Instant,
        wall: UnixMillis,
    ) -> (Plan, Option<Instant>) {
        let (snapshot, counts) = st.learning();
        self.learner.refresh(counts, snapshot, now);
        self.events.forget_before(wall);
        // A starving workload no longer waiting (placed, finished or gone) holds nothing.
        self.starving.retain(|_, (s, _)| {
            st.workload(s)
                .is_some_and(|w| !w.value.status.phase.is_terminal())
                && st.allocations_of(s).is_empty()
        });
        let capacity = st.snapshot().capacity();
        let mut pass = Pass::new(
            self.config.max_placements,
            self.config.node_grace,
            &self.policy,
            self.learner.mix(),
            &mut self.backoffs,
            &mut self.expiries,
            &mut self.events,
            &self.metrics,
            &mut self.starving,
        );
        pass.now = wall;
        pass.finished_ttl = self.config.finished_ttl;
        pass.event_lease = self.event_lease.map_or(0, |(id, _)| id);
        pass.capacity = capacity;
        pass.starvation_after = self.config.starvation_after;
        pass.preemption = self.config.preemption;
        let node_wake = lifecycle::run(&mut pass, st, now);

        if st.take_capacity_changed() {
            pass.backoffs.release_all(st.dirty_mut());
        }
        pass.backoffs.release_due(now, st.dirty_mut());
        pass.expiries.release_due(now, st.dirty_mut());

        let stop_wake = stopping::run(&mut pass, st);
        let drain_wake = drain::run(&mut pass, st);
        let dirty = st.take_dirty();
        let mut order = Order::new(st, dirty);
        while let Some(r) = order.next(st, capacity, self.config.queue_order) {
            workload::reconcile(&mut pass, st, &r, now);
            if pass.budget == 0 {
                break;
            }
        }
        // Out of budget: the rest waits for the next pass.
        st.requeue(order.rest());
        let scale_wake = self.autoscaler.run(&mut pass, st, now);
        let idle = st.dirty_len() == 0 && pass.backoffs.is_empty();
        let grow_wake = self
            .config
            .elastic_window
            .and_then(|window| self.growth.check(&mut pass, st, now, idle, window));

        let depth = st.dirty_len() + pass.backoffs.len();
        pass.metrics.queue_depth.set(depth as i64);
        let at_wall = |at: UnixMillis| now + Duration::from_millis(at.millis_since(wall));
        let stop_wake = stop_wake.map(at_wall);
        let drain_wake = drain_wake.map(at_wall);
        let wake = [
            node_wake,
            pass.backoffs.next_due(),
            pass.expiries.next_due(),
            stop_wake,
            drain_wake,
            grow_wake,
            scale_wake,
        ]
        .into_iter()
        .flatten()
        .min();
        (pass.plan, wake)
    }
}
