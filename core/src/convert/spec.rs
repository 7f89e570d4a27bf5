//! Workload specs: the replica template, inference services and training jobs, with the
//! defaults the API documents.

use uni_proto::v1 as pb;

use super::{enum_value, join, list, opt, or_default, port, FromProto};
use crate::error::FieldErrors;
use crate::model::{
    priority, Autoscaling, EnvVar, InferenceServiceSpec, Probe, ProbeAction, PrometheusMetric,
    ReplicaCount, ReplicaTemplate, RetryPolicy, RollingUpdate, ScalingMetric, TrainingJobSpec,
    WorkerCount, DEFAULT_MASTER_PORT, DEFAULT_QUEUE,
};

impl From<&EnvVar> for pb::EnvVar {
    fn from(e: &EnvVar) -> Self {
        Self {
            name: e.name.clone(),
            value: e.value.clone(),
        }
    }
}

impl FromProto<pb::EnvVar> for EnvVar {
    fn from_proto(p: &pb::EnvVar, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self::new(p.name.clone(), p.value.clone())
    }
}

impl From<&ReplicaTemplate> for pb::ReplicaTemplate {
    fn from(t: &ReplicaTemplate) -> Self {
        Self {
            command: t.command.clone(),
            args: t.args.clone(),
            env: t.env.iter().map(Into::into).collect(),
            working_dir: t.working_dir.clone(),
            resources: Some((&t.resources).into()),
            placement: Some((&t.placement).into()),
            run_as_user: t.run_as_user,
            run_as_group: t.run_as_group,
        }
    }
}

impl FromProto<pb::ReplicaTemplate> for ReplicaTemplate {
    fn from_proto(p: &pb::ReplicaTemplate, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            command: p.command.clone(),
            args: p.args.clone(),
            env: list(&p.env, path, "env", errs),
            working_dir: p.working_dir.clone(),
            resources: opt(p.resources.as_ref(), path, "resources", errs),
            placement: opt(p.placement.as_ref(), path, "placement", errs),
            run_as_user: p.run_as_user,
            run_as_group: p.run_as_group,
        }
    }
}

/// 0 means "the default" for these fields.
fn nonzero_or(v: u32, default: u32) -> u32 {
    if v == 0 {
        default
    } else {
        v
    }
}

impl From<&Probe> for pb::Probe {
    fn from(p: &Probe) -> Self {
        let action = match &p.action {
            ProbeAction::HttpGet { path, port } => pb::probe::Action::HttpGet(pb::HttpGetAction {
                path: path.clone(),
                port: (*port).into(),
            }),
            ProbeAction::TcpSocket { port } => pb::probe::Action::TcpSocket(pb::TcpSocketAction {
                port: (*port).into(),
            }),
        };
        Self {
            action: Some(action),
            initial_delay_seconds: p.initial_delay_seconds,
            period_seconds: p.period_seconds,
            timeout_seconds: p.timeout_seconds,
            failure_threshold: p.failure_threshold,
            success_threshold: p.success_threshold,
        }
    }
}

impl FromProto<pb::Probe> for Probe {
    fn from_proto(p: &pb::Probe, path: &str, errs: &mut FieldErrors) -> Self {
        let action = match &p.action {
            Some(pb::probe::Action::HttpGet(h)) => {
                let at = join(path, "http_get");
                ProbeAction::HttpGet {
                    path: or_default(&h.path, "/"),
                    port: port(h.port, &at, "port", errs),
                }
            }
            Some(pb::probe::Action::TcpSocket(t)) => ProbeAction::TcpSocket {
                port: port(t.port, &join(path, "tcp_socket"), "port", errs),
            },
            None => {
                errs.push(path, "set http_get or tcp_socket");
                ProbeAction::default()
            }
        };
        Self {
            action,
            initial_delay_seconds: p.initial_delay_seconds,
            period_seconds: nonzero_or(p.period_seconds, Probe::DEFAULT_PERIOD_SECONDS),
            timeout_seconds: nonzero_or(p.timeout_seconds, Probe::DEFAULT_TIMEOUT_SECONDS),
            failure_threshold: nonzero_or(p.failure_threshold, Probe::DEFAULT_FAILURE_THRESHOLD),
            success_threshold: nonzero_or(p.success_threshold, Probe::DEFAULT_SUCCESS_THRESHOLD),
        }
    }
}

impl From<&Autoscaling> for pb::Autoscaling {
    fn from(a: &Autoscaling) -> Self {
        let metric = match a.metric {
            ScalingMetric::Concurrency => pb::ScalingMetric::Concurrency,
            ScalingMetric::RequestsPerSecond => pb::ScalingMetric::RequestsPerSecond,
            ScalingMetric::DeviceUtilization => pb::ScalingMetric::DeviceUtilization,
            ScalingMetric::ComputeUtilization => pb::ScalingMetric::ComputeUtilization,
            ScalingMetric::Prometheus => pb::ScalingMetric::Prometheus,
        };
        Self {
            metric: metric.into(),
            target: a.target,
            scale_down_delay_seconds: a.scale_down_delay_seconds,
            stable_window_seconds: a.stable_window_seconds,
            panic_window_seconds: a.panic_window_seconds,
            prometheus: a.prometheus.as_ref().map(|m| pb::PrometheusMetric {
                name: m.name.clone(),
                path: m.path.clone(),
                port: m.port.into(),
            }),
        }
    }
}

impl FromProto<pb::Autoscaling> for Autoscaling {
    fn from_proto(p: &pb::Autoscaling, path: &str, errs: &mut FieldErrors) -> Self {
        let metric = match enum_value(p.metric, path, "metric", errs) {
            Some(pb::ScalingMetric::RequestsPerSecond) => ScalingMetric::RequestsPerSecond,
            Some(pb::ScalingMetric::DeviceUtilization) => ScalingMetric::DeviceUtilization,
            Some(pb::ScalingMetric::ComputeUtilization) => ScalingMetric::ComputeUtilization,
            Some(pb::ScalingMetric::Prometheus) => ScalingMetric::Prometheus,
            _ => ScalingMetric::Concurrency,
        };
        Self {
            metric,
            target: p.target,
            scale_down_delay_seconds: nonzero_or(
                p.scale_down_delay_seconds,
                Autoscaling::DEFAULT_SCALE_DOWN_DELAY_SECONDS,
            ),
            stable_window_seconds: nonzero_or(
                p.stable_window_seconds,
                Autoscaling::DEFAULT_STABLE_WINDOW_SECONDS,
            ),
            panic_window_seconds: nonzero_or(
                p.panic_window_seconds,
                Autoscaling::DEFAULT_PANIC_WINDOW_SECONDS,
            ),
            prometheus: p.prometheus.as_ref().map(|m| PrometheusMetric {
                name: m.name.clone(),
                path: if m.path.is_empty() {
                    PrometheusMetric::default().path
                } else {
                    m.path.clone()
                },
                port: port(m.port, &join(path, "prometheus"), "port", errs),
            }),
        }
    }
}

impl From<&InferenceServiceSpec> for pb::InferenceServiceSpec {
    fn from(s: &InferenceServiceSpec) -> Self {
        Self {
            template: Some((&s.template).into()),
            replicas: Some(pb::ReplicaCount {
                min: s.replicas.min,
                max: s.replicas.max,
                desired: Some(s.replicas.desired),
            }),
            port: s.port.into(),
            readiness_probe: s.readiness_probe.as_ref().map(Into::into),
            liveness_probe: s.liveness_probe.as_ref().map(Into::into),
            autoscaling: s.autoscaling.as_ref().map(Into::into),
            priority: Some(s.priority),
            rolling_update: Some(pb::RollingUpdate {
                max_surge: Some(s.rolling_update.max_surge),
                max_unavailable: Some(s.rolling_update.max_unavailable),
            }),
            queue: s.queue.clone(),
        }
    }
}

impl FromProto<pb::InferenceServiceSpec> for InferenceServiceSpec {
    fn from_proto(p: &pb::InferenceServiceSpec, path: &str, errs: &mut FieldErrors) -> Self {
        let replicas = p.replicas.map_or_else(ReplicaCount::default, |r| {
            let desired = r.desired.unwrap_or(r.min);
            let max = if r.max == 0 {
                r.min.max(desired)
            } else {
                r.max
            };
            ReplicaCount {
                min: r.min,
                max,
                desired,
            }
        });
        let defaults = RollingUpdate::default();
        let rolling_update = p.rolling_update.map_or(defaults, |r| RollingUpdate {
            max_surge: r.max_surge.unwrap_or(defaults.max_surge),
            max_unavailable: r.max_unavailable.unwrap_or(defaults.max_unavailable),
        });
        let probe = |p: Option<&pb::Probe>, field: &str, errs: &mut FieldErrors| {
            p.map(|p| Probe::from_proto(p, &join(path, field), errs))
        };
        Self {
            template: opt(p.template.as_ref(), path, "template", errs),
            replicas,
            port: port(p.port, path, "port", errs),
            readiness_probe: probe(p.readiness_probe.as_ref(), "readiness_probe", errs),
            liveness_probe: probe(p.liveness_probe.as_ref(), "liveness_probe", errs),
            autoscaling: p
                .autoscaling
                .as_ref()
                .map(|a| Autoscaling::from_proto(a, &join(path, "autoscaling"), errs)),
            priority: p.priority.unwrap_or(priority::HIGH),
            rolling_update,
            queue: or_default(&p.queue, DEFAULT_QUEUE),
        }
    }
}

impl From<&TrainingJobSpec> for pb::TrainingJobSpec {
    fn from(s: &TrainingJobSpec) -> Self {
        Self {
            template: Some((&s.template).into()),
            workers: Some(pb::WorkerCount {
                min: s.workers.min,
                max: s.workers.max,
            }),
            master_port: s.master_port.into(),
            retry: Some(pb::RetryPolicy {
                max_restarts: Some(s.retry.max_restarts),
                backoff_seconds: s.retry.backoff_seconds,
                max_backoff_seconds: s.retry.max_backoff_seconds,
            }),
            preemptible: s.preemptible,
            grace_period_seconds: Some(s.grace_period_seconds),
            priority: Some(s.priority),
            queue: s.queue.clone(),
            ttl_seconds_after_finished: s.ttl_seconds_after_finished,
        }
    }
}

impl FromProto<pb::TrainingJobSpec> for TrainingJobSpec {
    fn from_proto(p: &pb::TrainingJobSpec, path: &str, errs: &mut FieldErrors) -> Self {
        let workers = p.workers.map_or_else(WorkerCount::default, |w| {
            let min = w.min.max(1);
            WorkerCount {
                min,
                max: nonzero_or(w.max, min),
            }
        });
        let retry = p.retry.map_or_else(RetryPolicy::default, |r| RetryPolicy {
            max_restarts: r.max_restarts.unwrap_or(RetryPolicy::DEFAULT_MAX_RESTARTS),
            backoff_seconds: nonzero_or(r.backoff_seconds, RetryPolicy::DEFAULT_BACKOFF_SECONDS),
            max_backoff_seconds: nonzero_or(
                r.max_backoff_seconds,
                RetryPolicy::DEFAULT_MAX_BACKOFF_SECONDS,
            ),
        });
        let master_port = match port(p.master_port, path, "master_port", errs) {
            0 => DEFAULT_MASTER_PORT,
            port => port,
        };
        Self {
            template: opt(p.template.as_ref(), path, "template", errs),
            workers,
            master_port,
            retry,
            preemptible: p.preemptible,
            grace_period_seconds: p
                .grace_period_seconds
                .unwrap_or(TrainingJobSpec::DEFAULT_GRACE_PERIOD_SECONDS),
            priority: p.priority.unwrap_or(priority::NORMAL),
            queue: or_default(&p.queue, DEFAULT_QUEUE),
            ttl_seconds_after_finished: p.ttl_seconds_after_finished,
        }
    }
}
