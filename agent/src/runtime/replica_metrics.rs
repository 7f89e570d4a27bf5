//! Per-replica metrics read from the replica table at scrape time: replicas running, and
//! each replica's cgroup memory and CPU usage.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, IntGauge, Opts};

use super::replica_table::ReplicaTable;
use crate::error::Result;
use crate::metrics::{prom, Metrics, REPLICA_LABELS};

/// Adds the per-replica metrics of `replicas` to `metrics`.
pub fn register(metrics: &Metrics, replicas: ReplicaTable) -> Result<()> {
    metrics.register(Box::new(ReplicaCollector::new(replicas)?))
}

/// Replicas running, and each replica's cgroup usage.
struct ReplicaCollector {
    replicas: ReplicaTable,
    running: IntGauge,
    memory: GaugeVec,
    cpu: CounterVec,
}

impl ReplicaCollector {
    fn new(replicas: ReplicaTable) -> Result<Self> {
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
