//! Prometheus metrics on `/metrics`: restarts, probe failures, store errors, registration and
//! simulation gauges, and collectors others register (the runtime's per-replica usage).

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use prometheus::core::Collector;
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

pub(crate) const REPLICA_LABELS: &[&str] = &["namespace", "workload", "replica"];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub restarts: IntCounterVec,
    pub probe_failures: IntCounterVec,
    pub registered: IntGauge,
    pub store_errors: IntCounterVec,
    pub simulated_nodes: IntGauge,
    pub simulated_replicas: IntGauge,
}

pub(crate) fn prom(e: prometheus::Error) -> Error {
    Error::Server(format!("metrics: {e}"))
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let m = Self {
            registry: Registry::new(),
            restarts: IntCounterVec::new(
                Opts::new(
                    "universal_agent_replica_restarts_total",
                    "Restarts of replica processes by the agent.",
                ),
                REPLICA_LABELS,
            )
            .map_err(prom)?,
            probe_failures: IntCounterVec::new(
                Opts::new(
                    "universal_agent_probe_failures_total",
                    "Failed readiness and liveness probe attempts.",
                ),
                &["namespace", "workload", "probe"],
            )
            .map_err(prom)?,
            registered: IntGauge::new(
                "universal_agent_node_registered",
                "1 while the node is registered under a live lease.",
            )
            .map_err(prom)?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    "universal_agent_store_errors_total",
                    "Failed store operations, by operation.",
                ),
                &["op"],
            )
            .map_err(prom)?,
            simulated_nodes: IntGauge::new(
                "universal_agent_simulated_nodes",
                "Simulated nodes registered by this process.",
            )
            .map_err(prom)?,
            simulated_replicas: IntGauge::new(
                "universal_agent_simulated_replicas",
                "Allocations running on simulated nodes.",
            )
            .map_err(prom)?,
        };
        for c in [
            Box::new(m.restarts.clone()) as Box<dyn Collector>,
            Box::new(m.probe_failures.clone()),
            Box::new(m.registered.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.simulated_nodes.clone()),
            Box::new(m.simulated_replicas.clone()),
        ] {
            m.registry.register(c).map_err(prom)?;
        }
        Ok(m)
    }

    /// Counts a failed store operation `op` (e.g. `register`).
    pub fn store_error(&self, op: &str) {
        self.store_errors.with_label_values(&[op]).inc();
    }

    /// Adds a collector read at scrape time (the runtime's per-replica usage).
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<()> {
        self.registry.register(collector).map_err(prom)
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Serves `GET /metrics` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { m.render() }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .map_err(Error::io("serving metrics"))
}

/// Binds the metrics listener (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("binding metrics listener {addr}")))
}
