//! Workloads: what users submit. One kind per spec: an inference service or a training job.

use serde::{Deserialize, Serialize};

use super::inference::InferenceServiceSpec;
use super::meta::ObjectMeta;
use super::status::WorkloadStatus;
use super::template::ReplicaTemplate;
use super::training::TrainingJobSpec;
use crate::error::Error;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    pub meta: ObjectMeta,
    pub spec: WorkloadSpec,
    pub status: WorkloadStatus,
}

/// Exactly one kind. Written like the wire's oneof, `spec: {inference: {...}}`, which reads
/// the same in YAML and JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "SpecRepr", try_from = "SpecRepr")]
pub enum WorkloadSpec {
    Inference(InferenceServiceSpec),
    Training(TrainingJobSpec),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inference: Option<InferenceServiceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training: Option<TrainingJobSpec>,
}

impl From<WorkloadSpec> for SpecRepr {
    fn from(s: WorkloadSpec) -> Self {
        match s {
            WorkloadSpec::Inference(i) => Self {
                inference: Some(i),
                training: None,
            },
            WorkloadSpec::Training(t) => Self {
                inference: None,
                training: Some(t),
            },
        }
    }
}

impl TryFrom<SpecRepr> for WorkloadSpec {
    type Error = String;

    fn try_from(r: SpecRepr) -> Result<Self, String> {
        match (r.inference, r.training) {
            (Some(i), None) => Ok(Self::Inference(i)),
            (None, Some(t)) => Ok(Self::Training(t)),
            _ => Err("spec must set exactly one of inference or training".to_string()),
        }
    }
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self::Inference(InferenceServiceSpec::default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    InferenceService,
    TrainingJob,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InferenceService => "InferenceService",
            Self::TrainingJob => "TrainingJob",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WorkloadSpec {
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Self::Inference(_) => WorkloadKind::InferenceService,
            Self::Training(_) => WorkloadKind::TrainingJob,
        }
    }

    pub fn template(&self) -> &ReplicaTemplate {
        match self {
            Self::Inference(s) => &s.template,
            Self::Training(s) => &s.template,
        }
    }

    pub fn priority(&self) -> i32 {
        match self {
            Self::Inference(s) => s.priority,
            Self::Training(s) => s.priority,
        }
    }

    pub fn queue(&self) -> &str {
        match self {
            Self::Inference(s) => &s.queue,
            Self::Training(s) => &s.queue,
        }
    }

    /// Replicas (or workers) wanted now: inference `replicas.desired`, training `workers.max`
    /// (an elastic job may run with fewer, down to `workers.min`).
    pub fn desired_replicas(&self) -> u32 {
        match self {
            Self::Inference(s) => s.replicas.desired,
            Self::Training(s) => s.workers.max,
        }
    }

    /// Fewest replicas placed together (the gang size): 1 for inference, `workers.min` for
    /// training.
    pub fn gang_size(&self) -> u32 {
        match self {
            Self::Inference(_) => 1,
            Self::Training(s) => s.workers.min,
        }
    }

    pub fn preemptible(&self) -> bool {
        match self {
            Self::Inference(_) => false,
            Self::Training(s) => s.preemptible,
        }
    }

    /// Applies a scale request; each `Some` replaces one count. Inference: `replicas.desired`,
    /// `.min`, `.max`, with desired clamped into new bounds when not given. Training:
    /// `workers.min` and `.max`; `desired` is refused. Validate the workload afterwards.
    pub fn scale(
        &mut self,
        desired: Option<u32>,
        min: Option<u32>,
        max: Option<u32>,
    ) -> Result<(), Error> {
        match self {
            Self::Inference(s) => {
                let r = &mut s.replicas;
                r.min = min.unwrap_or(r.min);
                r.max = max.unwrap_or(r.max);
                r.desired = desired.unwrap_or_else(|| r.desired.clamp(r.min, r.max.max(r.min)));
            }
            Self::Training(s) => {
                if desired.is_some() {
                    return Err(Error::invalid(
                        "desired",
                        "not allowed for training jobs: set min and max workers",
                    ));
                }
                s.workers.min = min.unwrap_or(s.workers.min);
                s.workers.max = max.unwrap_or(s.workers.max);
            }
        }
        Ok(())
    }
}

impl Workload {
    pub fn kind(&self) -> WorkloadKind {
        self.spec.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_clamps_desired_and_refuses_desired_for_training() {
        let mut spec = WorkloadSpec::Inference(InferenceServiceSpec::default());
        spec.scale(None, Some(2), Some(5)).expect("scale");
        assert_eq!(spec.desired_replicas(), 2);
        spec.scale(Some(4), None, None).expect("scale");
        assert_eq!(spec.desired_replicas(), 4);
        spec.scale(None, None, Some(3)).expect("scale");
        assert_eq!(spec.desired_replicas(), 3);

        let mut job = WorkloadSpec::Training(TrainingJobSpec::default());
        assert!(job.scale(Some(2), None, None).is_err());
        job.scale(None, Some(2), Some(8)).expect("scale");
        assert_eq!((job.gang_size(), job.desired_replicas()), (2, 8));
    }
}
