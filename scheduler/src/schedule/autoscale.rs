//! The autoscaler, run by the leader once a gateway tick (and at once when a gateway holds
//! requests for a service with no ready replica). It moves an inference service's
//! `replicas.desired` between min and max toward `observed / target`, as Knative's KPA does:
//!
//! - *observed* is the load over the service's stable window, summed over every scheduler
//!   replica's gateway (each publishes its own windows, so a new leader decides from full
//!   windows at once);
//! - a *panic* window: when the load over it asks for at least twice the ready replicas, the
//!   service scales up to it at once and does not scale down until a stable window passes;
//! - the scale-down delay: the count decided is the largest recommended over the delay, and a
//!   leader that has watched a service for less than the delay (just elected) never lowers
//!   it, so failover cannot flap;
//! - rate limits: at most [`MAX_SCALE_DOWN_RATE`] times fewer replicas than are ready per step;
//! - requests held at zero count: a service with requests waiting gets at least one replica.
//!
//! Changes are ordinary fenced leader writes of the workload, each with an event and metrics.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use uni_core::model::{
    Autoscaling, EventType, ReplicaPhase, ScalingMetric, Signals, WorkloadRef, WorkloadSpec,
};

use super::pass::Pass;
use super::publish_tick;
use super::status::object_ref;
use crate::cache::State;

/// Panic when the burst window asks for this many times the ready replicas.
const PANIC_THRESHOLD: f64 = 2.0;
/// One step removes at most half the ready replicas.
const MAX_SCALE_DOWN_RATE: f64 = 2.0;
/// A gateway's load this old no longer counts (its replica is gone or cut off).
const STALE_MILLIS: u64 = 10_000;

#[derive(Default)]
pub struct Autoscaler {
    services: HashMap<WorkloadRef, Scale>,
    next: Option<Instant>,
}

/// What the autoscaler remembers about one service.
struct Scale {
    /// When this leader began deciding for it.
    since: Instant,
    /// In panic mode until then.
    panic_until: Option<Instant>,
    /// Recommendations over the scale-down delay, newest last.
    history: VecDeque<(Instant, u32)>,
}

/// The load of one service, summed over gateways.
#[derive(Default, Clone, Copy)]
struct Load {
    stable: Signals,
    panic: Signals,
    waiting: u32,
}

/// A decision and what it was made on, for the event.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub replicas: u32,
    /// The metric per ready replica (all of it when none is ready).
    pub per_replica: f64,
    pub panic: bool,
    pub waiting: u32,
}

fn metric(a: &Autoscaling, s: Signals) -> f64 {
    match a.metric {
        ScalingMetric::RequestsPerSecond => s.rps,
        ScalingMetric::Prometheus => s.metric,
        _ => s.concurrency,
    }
}

fn metric_name(a: &Autoscaling) -> &str {
    match (&a.metric, &a.prometheus) {
        (ScalingMetric::RequestsPerSecond, _) => "requests_per_second",
        (ScalingMetric::Prometheus, Some(m)) => &m.name,
        _ => "concurrency",
    }
}

fn ceil(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        x.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl Scale {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            panic_until: None,
            history: VecDeque::new(),
        }
    }

    /// The replica count for `load`, from `current` desired and `ready` replicas.
    fn decide(
        &mut self,
        a: &Autoscaling,
        (min, max): (u32, u32),
        current: u32,
        ready: u32,
        load: Load,
        now: Instant,
    ) -> Decision {
        let stable = metric(a, load.stable);
        let burst = metric(a, load.panic);
        let want_stable = ceil(stable / a.target);
        let want_panic = ceil(burst / a.target);
        let base = f64::from(ready.max(1));
        if f64::from(want_panic) / base >= PANIC_THRESHOLD {
            self.panic_until = Some(now + Duration::from_secs(a.stable_window_seconds.into()));
        }
        let panic = self.panic_until.is_some_and(|u| now < u);
        let mut want = if panic {
            want_panic.max(want_stable).max(current)
        } else {
            want_stable
        };
        if load.waiting > 0 {
            want = want.max(ceil(f64::from(load.waiting) / a.target)).max(1);
        }
        // Scale down by at most half the ready replicas at a time.
        let floor = (f64::from(ready) / MAX_SCALE_DOWN_RATE).floor() as u32;
        want = want.max(floor.min(current));
        let delay = Duration::from_secs(a.scale_down_delay_seconds.into());
        self.history.push_back((now, want));
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > delay)
        {
            self.history.pop_front();
        }
        let mut replicas = self.history.iter().map(|(_, w)| *w).max().unwrap_or(want);
        if now.duration_since(self.since) < delay {
            // Not watched for a whole delay (a new leader): add, never remove.
            replicas = replicas.max(current);
        }
        Decision {
            replicas: replicas.clamp(min, max.max(min)),
            per_replica: stable / base,
            panic,
            waiting: load.waiting,
        }
    }
}

impl Autoscaler {
    /// Decides for every autoscaled service when due; returns when it is due next.
    pub fn run(&mut self, pass: &mut Pass<'_>, st: &mut State, now: Instant) -> Option<Instant> {
        let urgent = st.take_activation();
        if !urgent && self.next.is_some_and(|n| now < n) {
            return self.next;
        }
        let mut loads: HashMap<WorkloadRef, Load> = HashMap::new();
        for l in st.loads().values() {
            if pass.now.millis_since(l.at) > STALE_MILLIS {
                continue;
            }
            for s in &l.services {
                let r = WorkloadRef {
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                };
                let e = loads.entry(r).or_default();
                e.stable = e.stable + s.stable;
                e.panic = e.panic + s.panic;
                e.waiting += s.waiting;
            }
        }
        let scaled: Vec<WorkloadRef> = st
            .workloads()
            .iter()
            .filter(|(_, w)| {
                w.value.meta.deleted.is_none()
                    && matches!(&w.value.spec, WorkloadSpec::Inference(s) if s.autoscaling.is_some())
            })
            .map(|(r, _)| r.clone())
            .collect();
        self.services.retain(|r, _| scaled.binary_search(r).is_ok());
        for r in &scaled {
            self.decide(pass, st, r, loads.get(r).copied().unwrap_or_default(), now);
        }
        self.next = (!scaled.is_empty()).then(|| now + publish_tick());
        self.next
    }

    fn decide(
        &mut self,
        pass: &mut Pass<'_>,
        st: &State,
        r: &WorkloadRef,
        load: Load,
        now: Instant,
    ) {
        let Some(w) = st.workload(r).map(|s| &s.value) else {
            return;
        };
        let WorkloadSpec::Inference(spec) = &w.spec else {
            return;
        };
        let Some(a) = &spec.autoscaling else {
            return;
        };
        let ready = st
            .allocations_of(r)
            .iter()
            .filter(|x| x.notice.is_none() && x.draining.is_none())
            .filter(|x| {
                st.status(r, x.replica)
                    .is_some_and(|s| s.allocation_id == x.id && s.phase == ReplicaPhase::Ready)
            })
            .count();
        let ready = u32::try_from(ready).unwrap_or(u32::MAX);
        let current = spec.replicas.desired;
        let d = self
            .services
            .entry(r.clone())
            .or_insert_with(|| Scale::new(now))
            .decide(
                a,
                (spec.replicas.min, spec.replicas.max),
                current,
                ready,
                load,
                now,
            );
        let (ns, name) = (r.namespace.as_str(), r.name.as_str());
        pass.metrics
            .autoscaler_observed
            .with_label_values(&[ns, name, metric_name(a)])
            .set(metric(a, load.stable));
        pass.metrics
            .autoscaler_desired
            .with_label_values(&[ns, name])
            .set(i64::from(d.replicas));
        if d.replicas == current {
            return;
        }
        let direction = if d.replicas > current { "up" } else { "down" };
        pass.metrics
            .autoscaler_scaled
            .with_label_values(&[direction])
            .inc();
        let mut notes = Vec::new();
        if d.panic {
            notes.push("burst".to_string());
        }
        match d.waiting {
            0 => {}
            1 => notes.push("1 request waiting".into()),
            n => notes.push(format!("{n} requests waiting")),
        }
        let why = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        let message = format!(
            "scaled {current} -> {}: {} {:.1} per replica, target {}{why}",
            d.replicas,
            match a.metric {
                ScalingMetric::Prometheus => metric_name(a).to_string(),
                _ => metric_name(a).replace('_', " "),
            },
            d.per_replica,
            a.target
        );
        let replicas = d.replicas;
        pass.update_status(st, r, |w, _| {
            if let WorkloadSpec::Inference(s) = &mut w.spec {
                s.replicas.desired = replicas;
                w.meta.generation += 1;
            }
        });
        pass.event(object_ref(w), EventType::Normal, "Scaled", message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target: f64, delay: u32) -> Autoscaling {
        Autoscaling {
            target,
            scale_down_delay_seconds: delay,
            stable_window_seconds: 6,
            panic_window_seconds: 1,
            ..Autoscaling::default()
        }
    }

    fn load(stable: f64, panic: f64) -> Load {
        Load {
            stable: Signals {
                concurrency: stable,
                ..Signals::default()
            },
            panic: Signals {
                concurrency: panic,
                ..Signals::default()
            },
            waiting: 0,
        }
    }

    #[test]
    fn a_burst_scales_up_at_once_and_holds_until_a_stable_window_passes() {
        let a = spec(2.0, 0);
        let t0 = Instant::now();
        let mut s = Scale::new(t0);
        // 8 in flight over the burst window, the stable window still catching up.
        let d = s.decide(&a, (1, 4), 1, 1, load(2.0, 8.0), t0);
        assert_eq!((d.replicas, d.panic), (4, true));
        // The load stops: still 4 while panicking (a stable window of 6 s).
        let d = s.decide(
            &a,
            (1, 4),
            4,
            4,
            load(0.0, 0.0),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(d.replicas, 4);
        // After it, down by at most half the ready replicas per step.
        let d = s.decide(
            &a,
            (1, 4),
            4,
            4,
            load(0.0, 0.0),
            t0 + Duration::from_secs(7),
        );
        assert_eq!((d.replicas, d.panic), (2, false));
        let d = s.decide(
            &a,
            (1, 4),
            2,
            2,
            load(0.0, 0.0),
            t0 + Duration::from_secs(8),
        );
        assert_eq!(d.replicas, 1);
    }

    #[test]
    fn scale_down_waits_for_the_delay_and_a_new_leader_waits_a_whole_delay() {
        let a = spec(1.0, 10);
        let t0 = Instant::now();
        let mut s = Scale::new(t0);
        // A new leader sees low load: it keeps 3 for the delay.
        for secs in 0..10 {
            let d = s.decide(
                &a,
                (1, 5),
                3,
                3,
                load(1.0, 1.0),
                t0 + Duration::from_secs(secs),
            );
            assert_eq!(d.replicas, 3, "at {secs}s");
        }
        let d = s.decide(
            &a,
            (1, 5),
            3,
            3,
            load(1.0, 1.0),
            t0 + Duration::from_secs(11),
        );
        assert_eq!(d.replicas, 1);
        // Up at once; then down only once the high recommendation is a delay old.
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(s.decide(&a, (1, 5), 1, 1, load(3.0, 3.0), t1).replicas, 3);
        let d = s.decide(
            &a,
            (1, 5),
            3,
            3,
            load(1.0, 1.0),
            t1 + Duration::from_secs(5),
        );
        assert_eq!(d.replicas, 3);
        let d = s.decide(
            &a,
            (1, 5),
            3,
            3,
            load(1.0, 1.0),
            t1 + Duration::from_secs(11),
        );
        assert_eq!(
            d.replicas, 3,
            "the burst's recommendations are within the delay"
        );
        let d = s.decide(
            &a,
            (1, 5),
            3,
            3,
            load(1.0, 1.0),
            t1 + Duration::from_secs(16),
        );
        assert_eq!(d.replicas, 1);
    }

    #[test]
    fn idle_goes_to_zero_and_a_waiting_request_brings_one_back() {
        let a = spec(2.0, 0);
        let t0 = Instant::now();
        let mut s = Scale::new(t0);
        assert_eq!(s.decide(&a, (0, 3), 1, 1, load(0.0, 0.0), t0).replicas, 0);
        let mut waiting = load(0.0, 0.0);
        waiting.waiting = 1;
        let d = s.decide(&a, (0, 3), 0, 0, waiting, t0 + Duration::from_secs(1));
        assert_eq!((d.replicas, d.waiting), (1, 1));
        // Bounds hold whatever the load.
        assert_eq!(
            s.decide(&a, (0, 3), 1, 1, load(100.0, 100.0), t0).replicas,
            3
        );
    }
}
