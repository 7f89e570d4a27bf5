//! What the agent needs from a workload to run one of its replicas, taken from the workload
//! when the allocation is first seen and kept with the replica's state, so a restarted agent
//! can supervise it even while the store is unreachable.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uni_core::model::{EnvVar, Probe, Workload, WorkloadSpec};

use super::options::RuntimeOptions;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Restarted by the agent with backoff.
    #[default]
    Inference,
    /// Reported; the scheduler decides about the gang.
    Training,
}

/// Who a replica's process runs as: its user id and its only group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `nobody`/`nogroup`: the agent's default.
    pub const NOBODY: RunAs = RunAs {
        uid: 65534,
        gid: 65534,
    };
}

impl Default for RunAs {
    fn default() -> Self {
        Self::NOBODY
    }
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
    /// The template's `run_as_user`/`run_as_group`, else the agent's defaults.
    #[serde(default)]
    pub run_as: RunAs,
    /// The template named the user or the group itself (an agent that cannot switch users
    /// may not substitute its own for it).
    #[serde(default)]
    pub run_as_explicit: bool,
}

impl RunSpec {
    /// The agent's `default_grace` applies to inference services, which have no grace period
    /// of their own; its `run_as` to whatever of user and group the template leaves unset.
    pub fn from_workload(w: &Workload, opts: &RuntimeOptions) -> Self {
        let t = w.spec.template();
        let mut p = RunSpec {
            command: t.command.clone(),
            args: t.args.clone(),
            env: t.env.clone(),
            working_dir: t.working_dir.clone(),
            run_as: RunAs {
                uid: t.run_as_user.unwrap_or(opts.run_as.uid),
                gid: t.run_as_group.unwrap_or(opts.run_as.gid),
            },
            run_as_explicit: t.run_as_user.is_some() || t.run_as_group.is_some(),
            ..RunSpec::default()
        };
        let default_grace = opts.default_grace;
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

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::{InferenceServiceSpec, ReplicaTemplate};

    fn workload(run_as_user: Option<u32>, run_as_group: Option<u32>) -> Workload {
        Workload {
            spec: WorkloadSpec::Inference(InferenceServiceSpec {
                template: ReplicaTemplate {
                    command: vec!["serve".into()],
                    run_as_user,
                    run_as_group,
                    ..ReplicaTemplate::default()
                },
                ..InferenceServiceSpec::default()
            }),
            ..Workload::default()
        }
    }

    #[test]
    fn the_template_identity_wins_and_the_agent_default_fills_the_rest() {
        let opts = RuntimeOptions {
            run_as: RunAs {
                uid: 1000,
                gid: 2000,
            },
            ..RuntimeOptions::default()
        };
        let unset = RunSpec::from_workload(&workload(None, None), &opts);
        assert_eq!(unset.run_as, opts.run_as);
        assert!(!unset.run_as_explicit);
        let root = RunSpec::from_workload(&workload(Some(0), None), &opts);
        assert_eq!(root.run_as, RunAs { uid: 0, gid: 2000 });
        assert!(root.run_as_explicit);
        let group = RunSpec::from_workload(&workload(None, Some(7)), &opts);
        assert_eq!(group.run_as, RunAs { uid: 1000, gid: 7 });
        assert_eq!(RuntimeOptions::default().run_as, RunAs::NOBODY);
    }

    #[test]
    fn a_spec_saved_without_an_identity_runs_as_nobody() {
        let old = r#"{"kind":"Inference","command":["x"],"args":[],"env":[],"working_dir":"",
            "readiness":null,"liveness":null,"grace_seconds":1}"#;
        let spec: RunSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.run_as, RunAs::NOBODY);
    }
}
