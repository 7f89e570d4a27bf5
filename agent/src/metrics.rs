//! Prometheus metrics on `/metrics`: replicas running, restarts, probe failures, and per
//! replica cgroup usage (read at scrape time), plus registration and simulation gauges.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, Encoder, GaugeVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::runtime::Registry as Replicas;

const REPLICA_LABELS: &[&str] = &["namespace", "workload", "replica"];

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

fn prom(e: prometheus::Error) -> Error {
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

    /// Adds the per-replica metrics read from the runtime at scrape time.
    pub fn watch_replicas(&self, replicas: Replicas) -> Result<()> {
        let c = ReplicaCollector::new(replicas)?;
        self.registry.register(Box::new(c)).map_err(prom)
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Replicas running, and each replica's cgroup usage.
struct ReplicaCollector {
    replicas: Replicas,
    running: IntGauge,
    memory: GaugeVec,
    cpu: CounterVec,
}

impl ReplicaCollector {
    fn new(replicas: Replicas) -> Result<Self> {
        Ok(Self {
            replicas,
            running: IntGauge::new(
                "universal_agent_replicas_running",
                "Replicas with a running process on this node.",
            )
            .map_err(prom)?,
            memory: GaugeVec::new(
                Opts::new(
                    "universal_agent_replica_memory_bytes",
                    "Memory in use by a replica's cgroup.",
                ),
                REPLICA_LABELS,
            )
            .map_err(prom)?,
            cpu: CounterVec::new(
                Opts::new(
                    "universal_agent_replica_cpu_seconds_total",
                    "CPU time used by a replica's cgroup.",
                ),
                REPLICA_LABELS,
            )
            .map_err(prom)?,
        })
    }
}

impl Collector for ReplicaCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.running.desc();
        d.extend(self.memory.desc());
        d.extend(self.cpu.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let entries = self.replicas.snapshot();
        self.running
            .set(entries.iter().filter(|e| e.running).count() as i64);
        self.memory.reset();
        self.cpu.reset();
        for e in &entries {
            let Some(cg) = &e.cgroup else { continue };
            let replica = e.replica.to_string();
            let labels = [e.namespace.as_str(), e.workload.as_str(), replica.as_str()];
            if let Some(bytes) = cg.memory_bytes() {
                self.memory.with_label_values(&labels).set(bytes as f64);
            }
            if let Some(secs) = cg.cpu_seconds() {
                self.cpu.with_label_values(&labels).inc_by(secs);
            }
        }
        let mut out = self.running.collect();
        out.extend(self.memory.collect());
        out.extend(self.cpu.collect());
        out
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
