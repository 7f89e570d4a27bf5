//! Per-service load as the gateway sees it: requests in flight integrated over time into
//! one-second buckets (so a mean concurrency is exact, not sampled), requests started per
//! bucket, and requests held while no replica is ready. The autoscaler reads windows of the
//! buckets through the published [`GatewayLoad`](uni_core::model::GatewayLoad).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;
use uni_core::model::{Autoscaling, ServiceLoad, Signals, WorkloadRef};

/// Buckets kept per service: the longest window there is.
const KEPT: usize = Autoscaling::MAX_WINDOW_SECONDS as usize;

#[derive(Default)]
pub struct Meters {
    services: Mutex<HashMap<WorkloadRef, Arc<Mutex<Meter>>>>,
    /// Woken when a request starts waiting, so the load is published at once.
    pub urgent: Notify,
}

struct Meter {
    in_flight: u32,
    waiting: u32,
    /// When `in_flight` last changed, and in-flight x seconds accumulated since the bucket
    /// began.
    last: Instant,
    area: f64,
    bucket_start: Instant,
    started: u32,
    /// Closed one-second buckets, newest last: (mean concurrency, requests started per
    /// second).
    buckets: VecDeque<(f64, f64)>,
    /// The scraped metric, one sample a tick, newest last (services that scale on one).
    scraped: VecDeque<f64>,
}

impl Meter {
    fn new(now: Instant) -> Self {
        Self {
            in_flight: 0,
            waiting: 0,
            last: now,
            area: 0.0,
            bucket_start: now,
            started: 0,
            buckets: VecDeque::new(),
            scraped: VecDeque::new(),
        }
    }

    fn advance(&mut self, now: Instant) {
        self.area += f64::from(self.in_flight) * now.duration_since(self.last).as_secs_f64();
        self.last = now;
    }

    /// Closes the current bucket.
    fn close(&mut self, now: Instant) {
        self.advance(now);
        let span = now.duration_since(self.bucket_start).as_secs_f64();
        if span <= 0.0 {
            return;
        }
        // Per second, so a late tick does not inflate the rate.
        self.buckets
            .push_back((self.area / span, f64::from(self.started) / span));
        if self.buckets.len() > KEPT {
            self.buckets.pop_front();
        }
        self.area = 0.0;
        self.started = 0;
        self.bucket_start = now;
    }

    /// Means over the newest `seconds` buckets (fewer while the meter is younger).
    fn window(&self, seconds: u32) -> Signals {
        let want = (seconds as usize).clamp(1, KEPT);
        let m = want.min(self.scraped.len());
        let metric = if m == 0 {
            0.0
        } else {
            self.scraped.iter().rev().take(m).sum::<f64>() / m as f64
        };
        let n = want.min(self.buckets.len());
        if n == 0 {
            return Signals {
                concurrency: f64::from(self.in_flight),
                rps: 0.0,
                metric,
            };
        }
        let (c, r) = self
            .buckets
            .iter()
            .rev()
            .take(n)
            .fold((0.0, 0.0), |(c, r), (bc, br)| (c + bc, r + br));
        Signals {
            concurrency: c / n as f64,
            rps: r / n as f64,
            metric,
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0
            && self.waiting == 0
            && self.buckets.iter().all(|(c, r)| *c == 0.0 && *r == 0.0)
            && self.scraped.iter().all(|v| *v == 0.0)
    }
}

/// One request in flight on a service; counted out when dropped.
pub struct Metered(Arc<Mutex<Meter>>);

impl Drop for Metered {
    fn drop(&mut self) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.advance(Instant::now());
        m.in_flight = m.in_flight.saturating_sub(1);
    }
}

/// One request held for a service without a ready replica.
pub struct Waiting(Arc<Mutex<Meter>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.waiting = m.waiting.saturating_sub(1);
    }
}

impl Meters {
    fn meter(&self, r: &WorkloadRef) -> Arc<Mutex<Meter>> {
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services
            .entry(r.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Meter::new(Instant::now()))))
            .clone()
    }

    /// Counts a request in on `r`.
    pub fn start(&self, r: &WorkloadRef) -> Metered {
        let meter = self.meter(r);
        {
            let mut m = meter.lock().unwrap_or_else(|p| p.into_inner());
            m.advance(Instant::now());
            m.in_flight += 1;
            m.started += 1;
        }
        Metered(meter)
    }

    /// Counts a request as held for `r`, unless `limit` are held already.
    pub fn wait(&self, r: &WorkloadRef, limit: u32) -> Option<Waiting> {
        let meter = self.meter(r);
        {
            let mut m = meter.lock().unwrap_or_else(|p| p.into_inner());
            if m.waiting >= limit {
                return None;
            }
            m.waiting += 1;
            // The first one is news; the count of the rest goes out with the next tick.
            if m.waiting == 1 {
                self.urgent.notify_one();
            }
        }
        Some(Waiting(meter))
    }

    /// Drops every scraped sample: this gateway no longer scrapes (its replica stopped
    /// leading), and stale values must not hold a service up.
    pub fn forget_metrics(&self) {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        for meter in services.values() {
            meter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .scraped
                .clear();
        }
    }

    /// Records a tick's scrape of `r`'s metric.
    pub fn record_metric(&self, r: &WorkloadRef, value: f64) {
        let meter = self.meter(r);
        let mut m = meter.lock().unwrap_or_else(|p| p.into_inner());
        m.scraped.push_back(value);
        if m.scraped.len() > KEPT {
            m.scraped.pop_front();
        }
    }

    /// Closes every service's bucket (once a second) and drops services idle for the whole
    /// history kept.
    pub fn tick(&self, now: Instant) {
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services.retain(|_, meter| {
            let mut m = meter.lock().unwrap_or_else(|p| p.into_inner());
            m.close(now);
            !(m.idle() && Arc::strong_count(meter) == 1)
        });
    }

    /// Each service's windows, `windows` giving its (stable, panic) seconds; services with
    /// nothing to report are left out.
    pub fn loads(&self, windows: impl Fn(&WorkloadRef) -> (u32, u32)) -> Vec<ServiceLoad> {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ServiceLoad> = services
            .iter()
            .filter_map(|(r, meter)| {
                let m = meter.lock().unwrap_or_else(|p| p.into_inner());
                let (stable, panic) = windows(r);
                let load = ServiceLoad {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    stable: m.window(stable),
                    panic: m.window(panic),
                    waiting: m.waiting,
                };
                let busy = load.waiting > 0
                    || load.stable.concurrency > 0.0
                    || load.stable.rps > 0.0
                    || load.panic.concurrency > 0.0
                    || load.stable.metric > 0.0;
                busy.then_some(load)
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn r() -> WorkloadRef {
        WorkloadRef {
            namespace: "ml".into(),
            name: "llm".into(),
        }
    }

    #[test]
    fn concurrency_is_integrated_over_time_and_windows_average_buckets() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0);
        // Two requests for the first half second, none for the second half.
        m.in_flight = 2;
        m.started = 2;
        m.advance(t0 + Duration::from_millis(500));
        m.in_flight = 0;
        m.close(t0 + Duration::from_secs(1));
        let w = m.window(1);
        assert!((w.concurrency - 1.0).abs() < 1e-9, "{w:?}");
        assert!((w.rps - 2.0).abs() < 1e-9, "{w:?}");
        // Four idle seconds: a 5-second window averages them in, a 1-second one does not.
        for s in 2..=5 {
            m.close(t0 + Duration::from_secs(s));
        }
        assert!((m.window(5).concurrency - 0.2).abs() < 1e-9);
        assert_eq!(m.window(1).concurrency, 0.0);
    }

    #[test]
    fn waiting_is_bounded_and_idle_services_are_forgotten() {
        let meters = Meters::default();
        let a = meters.wait(&r(), 2).expect("first");
        let b = meters.wait(&r(), 2).expect("second");
        assert!(meters.wait(&r(), 2).is_none(), "a third is refused");
        assert_eq!(meters.loads(|_| (60, 6))[0].waiting, 2);
        drop((a, b));
        let now = Instant::now();
        meters.tick(now);
        assert!(meters.loads(|_| (60, 6)).is_empty());
        assert!(meters.services.lock().unwrap().is_empty());
        let held = meters.start(&r());
        meters.tick(now + Duration::from_secs(1));
        assert_eq!(meters.loads(|_| (60, 6)).len(), 1, "busy services stay");
        drop(held);
    }
}
