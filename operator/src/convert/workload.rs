//! InferenceService and TrainingJob resources as the Universal workloads they mirror.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use prost::Message;
use uni_proto::v1 as pb;

use super::counts::Counts;
use super::fingerprint::Fingerprint;
use super::template::template;
use crate::crd::inference::{Autoscaling, Probe, RollingUpdate, ScalingMetric};
use crate::crd::{InferenceService, TrainingJob, WorkloadStatus};
use crate::labels;

/// What the operator wants Universal to hold for one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The full workload, as sent on create and update.
    pub workload: pb::Workload,
    /// Fingerprint of everything but the counts; stored in an annotation.
    pub fingerprint: String,
    pub counts: Counts,
}

/// A custom resource mirrored as a Universal workload.
pub trait WorkloadResource:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The Kubernetes kind, also recorded on the Universal workload.
    const KIND: &'static str;

    /// The Universal spec with the counts this resource asks for; Err names the problem.
    fn universal_spec(&self) -> Result<(pb::workload::Spec, Counts), String>;

    fn workload_status(&self) -> Option<&WorkloadStatus>;
}

impl WorkloadResource for InferenceService {
    const KIND: &'static str = "InferenceService";

    fn universal_spec(&self) -> Result<(pb::workload::Spec, Counts), String> {
        let s = &self.spec;
        let desired = s.replicas.or(s.min_replicas).unwrap_or(1);
        let min = s.min_replicas.unwrap_or(desired);
        let max = s.max_replicas.unwrap_or(desired.max(1));
        let spec = pb::InferenceServiceSpec {
            template: Some(template(&s.template)),
            replicas: Some(pb::ReplicaCount {
                min,
                max,
                desired: Some(desired),
            }),
            port: s.port.unwrap_or(0),
            readiness_probe: s
                .readiness_probe
                .as_ref()
                .map(|p| probe(p, "readinessProbe"))
                .transpose()?,
            liveness_probe: s
                .liveness_probe
                .as_ref()
                .map(|p| probe(p, "livenessProbe"))
                .transpose()?,
            autoscaling: s.autoscaling.as_ref().map(autoscaling),
            priority: s.priority,
            rolling_update: s.rolling_update.as_ref().map(rolling_update),
            queue: s.queue.clone().unwrap_or_default(),
        };
        let counts = Counts {
            desired: s.autoscaling.is_none().then_some(desired),
            min,
            max,
        };
        Ok((pb::workload::Spec::Inference(spec), counts))
    }

    fn workload_status(&self) -> Option<&WorkloadStatus> {
        self.status.as_ref()
    }
}

impl WorkloadResource for TrainingJob {
    const KIND: &'static str = "TrainingJob";

    fn universal_spec(&self) -> Result<(pb::workload::Spec, Counts), String> {
        let s = &self.spec;
        let min = s.workers.unwrap_or(1);
        let max = s.max_workers.unwrap_or(min);
        let spec = pb::TrainingJobSpec {
            template: Some(template(&s.template)),
            workers: Some(pb::WorkerCount { min, max }),
            master_port: s.master_port.unwrap_or(0),
            retry: s.retry.as_ref().map(|r| pb::RetryPolicy {
                max_restarts: r.max_restarts,
                backoff_seconds: r.backoff_seconds.unwrap_or(0),
                max_backoff_seconds: r.max_backoff_seconds.unwrap_or(0),
            }),
            preemptible: s.preemptible.unwrap_or(false),
            grace_period_seconds: s.grace_period_seconds,
            priority: s.priority,
            queue: s.queue.clone().unwrap_or_default(),
            // The resource's lifecycle is Kubernetes': the scheduler keeps what it manages.
            ttl_seconds_after_finished: None,
        };
        let counts = Counts {
            desired: None,
            min,
            max,
        };
        Ok((pb::workload::Spec::Training(spec), counts))
    }

    fn workload_status(&self) -> Option<&WorkloadStatus> {
        self.status.as_ref()
    }
}

fn probe(p: &Probe, field: &str) -> Result<pb::Probe, String> {
    let action = match (&p.http_get, &p.tcp_socket) {
        (Some(h), None) => pb::probe::Action::HttpGet(pb::HttpGetAction {
            path: h.path.clone().unwrap_or_default(),
            port: h.port.unwrap_or(0),
        }),
        (None, Some(t)) => pb::probe::Action::TcpSocket(pb::TcpSocketAction {
            port: t.port.unwrap_or(0),
        }),
        _ => {
            return Err(format!(
                "spec.{field}: set exactly one of httpGet and tcpSocket"
            ))
        }
    };
    Ok(pb::Probe {
        action: Some(action),
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0),
        period_seconds: p.period_seconds.unwrap_or(0),
        timeout_seconds: p.timeout_seconds.unwrap_or(0),
        failure_threshold: p.failure_threshold.unwrap_or(0),
        success_threshold: p.success_threshold.unwrap_or(0),
    })
}

fn autoscaling(a: &Autoscaling) -> pb::Autoscaling {
    let metric = match a.metric {
        None => pb::ScalingMetric::Unspecified,
        Some(ScalingMetric::Concurrency) => pb::ScalingMetric::Concurrency,
        Some(ScalingMetric::RequestsPerSecond) => pb::ScalingMetric::RequestsPerSecond,
        Some(ScalingMetric::DeviceUtilization) => pb::ScalingMetric::DeviceUtilization,
        Some(ScalingMetric::ComputeUtilization) => pb::ScalingMetric::ComputeUtilization,
        Some(ScalingMetric::Prometheus) => pb::ScalingMetric::Prometheus,
    };
    pb::Autoscaling {
        metric: metric as i32,
        target: a.target,
        scale_down_delay_seconds: a.scale_down_delay_seconds.unwrap_or(0),
        stable_window_seconds: a.stable_window_seconds.unwrap_or(0),
        panic_window_seconds: a.panic_window_seconds.unwrap_or(0),
        prometheus: a.prometheus.as_ref().map(|m| pb::PrometheusMetric {
            name: m.name.clone(),
            path: m.path.clone().unwrap_or_default(),
            port: m.port.map_or(0, u32::from),
        }),
    }
}

fn rolling_update(r: &RollingUpdate) -> pb::RollingUpdate {
    pb::RollingUpdate {
        max_surge: r.max_surge,
        max_unavailable: r.max_unavailable,
    }
}

/// The Universal workload `obj` should be mirrored to, or why it cannot be.
/// The field of `w`'s template that names a host user or group, if one does.
pub fn host_identity_field(w: &pb::Workload) -> Option<&'static str> {
    let template = match w.spec.as_ref()? {
        pb::workload::Spec::Inference(s) => s.template.as_ref()?,
        pb::workload::Spec::Training(s) => s.template.as_ref()?,
    };
    if template.run_as_user.is_some() {
        Some("spec.template.runAsUser")
    } else if template.run_as_group.is_some() {
        Some("spec.template.runAsGroup")
    } else {
        None
    }
}

pub fn desired<K: WorkloadResource>(obj: &K) -> Result<Desired, String> {
    let (spec, counts) = obj.universal_spec()?;
    let namespace = obj.namespace().unwrap_or_default();
    let mut user_labels: BTreeMap<String, String> = obj.labels().clone();
    // The operator's own labels win over look-alikes on the resource.
    user_labels.retain(|k, _| !k.starts_with(labels::PREFIX));

    let fingerprint = Fingerprint::default()
        .bytes(K::KIND.as_bytes())
        .bytes(&without_counts(&spec).encode_to_vec())
        .map(&user_labels)
        .hex();

    let mut meta_labels = user_labels;
    meta_labels.insert(labels::MANAGED_BY.into(), labels::OPERATOR.into());
    meta_labels.insert(labels::KIND.into(), K::KIND.into());
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(labels::FINGERPRINT.into(), fingerprint.clone());
    annotations.insert(labels::OWNER_UID.into(), obj.uid().unwrap_or_default());
    let workload = pb::Workload {
        meta: Some(pb::ObjectMeta {
            name: obj.name_any(),
            namespace,
            labels: meta_labels.into_iter().collect(),
            annotations,
            ..pb::ObjectMeta::default()
        }),
        spec: Some(spec),
        status: None,
    };
    Ok(Desired {
        workload,
        fingerprint,
        counts,
    })
}

/// The spec with its counts zeroed: what the fingerprint covers.
fn without_counts(spec: &pb::workload::Spec) -> pb::Workload {
    let mut spec = spec.clone();
    match &mut spec {
        pb::workload::Spec::Inference(s) => s.replicas = None,
        pb::workload::Spec::Training(s) => s.workers = None,
    }
    pb::Workload {
        meta: None,
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::template::{ReplicaTemplate, Resources};
    use crate::crd::{InferenceServiceSpec, TrainingJobSpec};

    fn template() -> ReplicaTemplate {
        ReplicaTemplate {
            command: vec!["/bin/serve".into()],
            resources: Resources {
                compute: "500m".into(),
                memory: "1Gi".into(),
                accelerator: None,
            },
            ..ReplicaTemplate::default()
        }
    }

    fn service(replicas: Option<u32>) -> InferenceService {
        let mut s = InferenceService::new(
            "chat",
            InferenceServiceSpec {
                template: template(),
                replicas,
                min_replicas: None,
                max_replicas: None,
                port: None,
                readiness_probe: None,
                liveness_probe: None,
                autoscaling: None,
                priority: None,
                rolling_update: None,
                queue: None,
            },
        );
        s.metadata.namespace = Some("team-a".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    #[test]
    fn replicas_alone_fix_every_count() {
        let d = desired(&service(Some(3))).expect("valid");
        assert_eq!(
            d.counts,
            Counts {
                desired: Some(3),
                min: 3,
                max: 3
            }
        );
        let meta = d.workload.meta.as_ref().expect("meta");
        assert_eq!(
            (meta.namespace.as_str(), meta.name.as_str()),
            ("team-a", "chat")
        );
        assert_eq!(meta.labels[labels::KIND], "InferenceService");
        assert_eq!(meta.annotations[labels::OWNER_UID], "uid-1");
        // Scaled to zero: max stays at least 1, as Universal requires.
        assert_eq!(desired(&service(Some(0))).expect("valid").counts.max, 1);
    }

    #[test]
    fn fingerprint_ignores_counts_but_not_spec_or_labels() {
        let a = desired(&service(Some(1))).expect("valid");
        let b = desired(&service(Some(5))).expect("valid");
        assert_eq!(a.fingerprint, b.fingerprint);
        let mut changed = service(Some(1));
        changed.spec.template.resources.memory = "2Gi".into();
        assert_ne!(desired(&changed).expect("valid").fingerprint, a.fingerprint);
        let mut labelled = service(Some(1));
        labelled.labels_mut().insert("team".into(), "a".into());
        assert_ne!(
            desired(&labelled).expect("valid").fingerprint,
            a.fingerprint
        );
    }

    #[test]
    fn autoscaled_services_leave_the_desired_count_to_universal() {
        let mut s = service(Some(2));
        s.spec.min_replicas = Some(1);
        s.spec.max_replicas = Some(8);
        s.spec.autoscaling = Some(Autoscaling {
            metric: Some(ScalingMetric::RequestsPerSecond),
            target: 50.0,
            scale_down_delay_seconds: None,
            stable_window_seconds: Some(30),
            panic_window_seconds: None,
            prometheus: None,
        });
        let d = desired(&s).expect("valid");
        assert_eq!(
            d.counts,
            Counts {
                desired: None,
                min: 1,
                max: 8
            }
        );
        let Some(pb::workload::Spec::Inference(spec)) = &d.workload.spec else {
            panic!("inference spec");
        };
        assert_eq!(spec.replicas.and_then(|r| r.desired), Some(2));
    }

    #[test]
    fn probe_needs_exactly_one_action() {
        let mut s = service(None);
        s.spec.readiness_probe = Some(Probe::default());
        let err = desired(&s).expect_err("no action");
        assert!(err.contains("spec.readinessProbe"), "{err}");
    }

    #[test]
    fn a_named_host_user_or_group_is_found() {
        let mut s = service(Some(1));
        assert_eq!(host_identity_field(&desired(&s).unwrap().workload), None);
        s.spec.template.run_as_group = Some(1000);
        assert_eq!(
            host_identity_field(&desired(&s).unwrap().workload),
            Some("spec.template.runAsGroup")
        );
        s.spec.template.run_as_user = Some(0);
        assert_eq!(
            host_identity_field(&desired(&s).unwrap().workload),
            Some("spec.template.runAsUser")
        );
    }

    #[test]
    fn training_workers_become_gang_bounds() {
        let mut job = TrainingJob::new(
            "llm",
            TrainingJobSpec {
                template: template(),
                workers: Some(4),
                max_workers: Some(8),
                master_port: None,
                retry: None,
                preemptible: Some(true),
                grace_period_seconds: None,
                priority: None,
                queue: Some("research".into()),
            },
        );
        job.metadata.namespace = Some("ml".into());
        let d = desired(&job).expect("valid");
        assert_eq!(
            d.counts,
            Counts {
                desired: None,
                min: 4,
                max: 8
            }
        );
        let Some(pb::workload::Spec::Training(spec)) = &d.workload.spec else {
            panic!("training spec");
        };
        assert!(spec.preemptible);
        assert_eq!(spec.queue, "research");
    }
}
