//! Prometheus metrics of the control plane, served on `/metrics`.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uni_core::store::{KvStore, StoreHealth};

pub struct Metrics {
    registry: Registry,
    /// Time to decide one placement (filter, score, select, reserve), in seconds.
    pub placement_duration: Histogram,
    /// Time from a workload's creation to its allocations being committed, in seconds.
    pub submit_to_placed: Histogram,
    /// Time of one leader-fenced commit transaction, in seconds.
    pub commit_duration: Histogram,
    pub queue_depth: IntGauge,
    pub placements: IntCounter,
    pub failures: IntCounterVec,
    pub evictions: IntCounterVec,
    /// Workloads (or inference replicas) told to stop for another, by reason.
    pub preemptions: IntCounterVec,
    /// Device-hours the stopped work had run since it started, by reason.
    pub preempted_device_hours: prometheus::CounterVec,
    pub is_leader: IntGauge,
    pub capacity: GaugeVec,
    pub allocated: GaugeVec,
    pub nodes: GaugeVec,
    /// The revision the leader last compacted the store to.
    pub compacted_revision: IntGauge,
    pub store_db_size: IntGauge,
    pub store_db_size_in_use: IntGauge,
    /// 1 per alarm the store has raised (NOSPACE, CORRUPT).
    pub store_alarms: IntGaugeVec,
    /// What the inference gateway counts.
    pub gateway: crate::gateway::GatewayMetrics,
    /// Replica changes the autoscaler made, by direction (up, down).
    pub autoscaler_scaled: IntCounterVec,
    /// The autoscaler's last choice of replicas, by namespace and service.
    pub autoscaler_desired: IntGaugeVec,
    /// The load it decided on (summed over gateways, stable window), by namespace, service and
    /// metric.
    pub autoscaler_observed: GaugeVec,
    /// The store's last health, for `/healthz`.
    store_health: std::sync::Mutex<StoreHealth>,
}

fn histogram(name: &str, help: &str, start: f64) -> prometheus::Result<Histogram> {
    Histogram::with_opts(
        HistogramOpts::new(name, help).buckets(exponential_buckets(start, 2.0, 20)?),
    )
}

impl Metrics {
    pub fn new() -> prometheus::Result<Arc<Self>> {
        let p = "universal_scheduler_";
        let m = Self {
            registry: Registry::new(),
            placement_duration: histogram(
                &format!("{p}placement_duration_seconds"),
                "Time to decide one placement: filter, score, select and reserve.",
                0.000_001,
            )?,
            submit_to_placed: histogram(
                &format!("{p}submit_to_placed_seconds"),
                "Time from a workload's creation to its allocations being committed.",
                0.001,
            )?,
            commit_duration: histogram(
                &format!("{p}commit_duration_seconds"),
                "Time of one leader-fenced commit transaction.",
                0.0001,
            )?,
            queue_depth: IntGauge::new(
                format!("{p}queue_depth"),
                "Workloads waiting for placement, including those backing off.",
            )?,
            placements: IntCounter::new(
                format!("{p}placements_total"),
                "Replicas placed and committed.",
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    format!("{p}placement_failures_total"),
                    "Placement attempts that found no node, by the most common reason.",
                ),
                &["reason"],
            )?,
            evictions: IntCounterVec::new(
                Opts::new(
                    format!("{p}evictions_total"),
                    "Allocations removed from nodes.",
                ),
                &["reason"],
            )?,
            preemptions: IntCounterVec::new(
                Opts::new(
                    format!("{p}preemptions_total"),
                    "Workloads (or inference replicas) told to stop to make room, by reason \
                     (Preempted, Reclaimed, Resized).",
                ),
                &["reason"],
            )?,
            preempted_device_hours: prometheus::CounterVec::new(
                Opts::new(
                    format!("{p}preempted_device_hours_total"),
                    "Accelerator device-hours the stopped work had run since it last started.",
                ),
                &["reason"],
            )?,
            is_leader: IntGauge::new(format!("{p}is_leader"), "1 while this replica leads.")?,
            capacity: GaugeVec::new(
                Opts::new(
                    "universal_cluster_capacity",
                    "Allocatable capacity of ready nodes, per resource class.",
                ),
                &["resource"],
            )?,
            allocated: GaugeVec::new(
                Opts::new(
                    "universal_cluster_allocated",
                    "Capacity allocated to workloads, per resource class.",
                ),
                &["resource"],
            )?,
            nodes: GaugeVec::new(
                Opts::new("universal_cluster_nodes", "Nodes by state."),
                &["state"],
            )?,
            compacted_revision: IntGauge::new(
                format!("{p}compacted_revision"),
                "The revision the leader last compacted the store's history to.",
            )?,
            store_db_size: IntGauge::new(
                "universal_store_db_size_bytes",
                "Size of the store's database.",
            )?,
            store_db_size_in_use: IntGauge::new(
                "universal_store_db_size_in_use_bytes",
                "Of the store's database, what holds data (the rest is free pages).",
            )?,
            store_alarms: IntGaugeVec::new(
                Opts::new(
                    "universal_store_alarm",
                    "1 while the store has raised this alarm (NOSPACE: writes fail).",
                ),
                &["alarm"],
            )?,
            gateway: crate::gateway::GatewayMetrics {
                requests: IntCounterVec::new(
                    Opts::new(
                        "universal_gateway_requests_total",
                        "Requests the gateway answered, by namespace, service and status code.",
                    ),
                    &["namespace", "service", "code"],
                )?,
                in_flight: IntGaugeVec::new(
                    Opts::new(
                        "universal_gateway_in_flight",
                        "Requests in flight through the gateway, by namespace and service.",
                    ),
                    &["namespace", "service"],
                )?,
            },
            autoscaler_scaled: IntCounterVec::new(
                Opts::new(
                    "universal_autoscaler_scaled_total",
                    "Replica count changes the autoscaler made, by direction (up, down).",
                ),
                &["direction"],
            )?,
            autoscaler_desired: IntGaugeVec::new(
                Opts::new(
                    "universal_autoscaler_desired_replicas",
                    "Replicas the autoscaler wants, by namespace and service.",
                ),
                &["namespace", "service"],
            )?,
            autoscaler_observed: GaugeVec::new(
                Opts::new(
                    "universal_autoscaler_observed",
                    "Load over the stable window, summed over gateways, by namespace, service \
                     and metric (concurrency, requests_per_second).",
                ),
                &["namespace", "service", "metric"],
            )?,
            store_health: Default::default(),
        };
        m.registry.register(Box::new(m.autoscaler_scaled.clone()))?;
        m.registry
            .register(Box::new(m.autoscaler_desired.clone()))?;
        m.registry
            .register(Box::new(m.autoscaler_observed.clone()))?;
        m.registry.register(Box::new(m.gateway.requests.clone()))?;
        m.registry.register(Box::new(m.gateway.in_flight.clone()))?;
        m.registry
            .register(Box::new(m.placement_duration.clone()))?;
        m.registry
            .register(Box::new(m.compacted_revision.clone()))?;
        m.registry.register(Box::new(m.store_db_size.clone()))?;
        m.registry
            .register(Box::new(m.store_db_size_in_use.clone()))?;
        m.registry.register(Box::new(m.store_alarms.clone()))?;
        m.registry.register(Box::new(m.submit_to_placed.clone()))?;
        m.registry.register(Box::new(m.commit_duration.clone()))?;
        m.registry.register(Box::new(m.queue_depth.clone()))?;
        m.registry.register(Box::new(m.placements.clone()))?;
        m.registry.register(Box::new(m.failures.clone()))?;
        m.registry.register(Box::new(m.evictions.clone()))?;
        m.registry.register(Box::new(m.preemptions.clone()))?;
        m.registry
            .register(Box::new(m.preempted_device_hours.clone()))?;
        m.registry.register(Box::new(m.is_leader.clone()))?;
        m.registry.register(Box::new(m.capacity.clone()))?;
        m.registry.register(Box::new(m.allocated.clone()))?;
        m.registry.register(Box::new(m.nodes.clone()))?;
        Ok(Arc::new(m))
    }

    /// Records the store's health: gauges, `/healthz`, and a log line when alarms change.
    pub fn set_store_health(&self, health: StoreHealth) {
        let mut last = self.store_health.lock().unwrap_or_else(|p| p.into_inner());
        if last.alarms != health.alarms {
            for alarm in &last.alarms {
                self.store_alarms.with_label_values(&[alarm]).set(0);
            }
            if health.alarms.is_empty() {
                tracing::info!("store alarms cleared");
            } else {
                tracing::error!(
                    alarms = ?health.alarms,
                    "the store raised alarms: writes fail until they are resolved (README: \
                     \"The store is out of space\")"
                );
            }
        }
        for alarm in &health.alarms {
            self.store_alarms.with_label_values(&[alarm]).set(1);
        }
        self.store_db_size
            .set(i64::try_from(health.db_size_bytes).unwrap_or(i64::MAX));
        self.store_db_size_in_use
            .set(i64::try_from(health.db_size_in_use_bytes).unwrap_or(i64::MAX));
        *last = health;
    }

    /// `/healthz`'s text: "ok", or the store's alarms.
    fn health_text(&self) -> String {
        let h = self.store_health.lock().unwrap_or_else(|p| p.into_inner());
        if h.alarms.is_empty() {
            "ok".into()
        } else {
            format!(
                "degraded: store alarm {}: writes fail; reads are served",
                h.alarms.join(",")
            )
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

async fn health(State(m): State<Arc<Metrics>>) -> String {
    m.health_text()
}

/// Polls the store's health into `metrics` every `period` until `cancel` fires.
pub async fn watch_store(
    store: Arc<dyn KvStore>,
    metrics: Arc<Metrics>,
    period: std::time::Duration,
    cancel: CancellationToken,
) {
    loop {
        match store.health().await {
            Ok(h) => metrics.set_store_health(h),
            Err(e) => tracing::debug!(error = %e, "store health unavailable"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// Serves `/metrics` (and `/healthz`) until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(health))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
