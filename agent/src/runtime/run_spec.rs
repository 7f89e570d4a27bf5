//! What the agent needs from a workload to run one of its replicas, taken from the workload
//! when the allocation is first seen and kept with the replica's state, so a restarted agent
//! can supervise it even while the store is unreachable.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uni_core::model::{EnvVar, Probe, Workload, WorkloadSpec};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Restarted by the agent with backoff.
    #[default]
    Inference,
    /// Reported; the scheduler decides about the gang.
    Training,
}

/// How to run one replica of a workload: the process, its probes and how it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub kind: Kind,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub working_dir: String,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    /// Seconds between SIGTERM and SIGKILL.
    pub grace_seconds: u32,
}

impl RunSpec {
    /// `default_grace` applies to inference services, which have no grace period of their own.
    pub fn from_workload(w: &Workload, default_grace: Duration) -> Self {
        let t = w.spec.template();
        let mut p = RunSpec {
            command: t.command.clone(),
            args: t.args.clone(),
            env: t.env.clone(),
            working_dir: t.working_dir.clone(),
            ..RunSpec::default()
        };
        match &w.spec {
            WorkloadSpec::Inference(s) => {
                p.kind = Kind::Inference;
                p.readiness = s.readiness_probe.clone();
                p.liveness = s.liveness_probe.clone();
                p.grace_seconds = u32::try_from(default_grace.as_secs()).unwrap_or(u32::MAX);
            }
            WorkloadSpec::Training(s) => {
                p.kind = Kind::Training;
                p.grace_seconds = s.grace_period_seconds;
            }
        }
        p
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(u64::from(self.grace_seconds))
    }
}
