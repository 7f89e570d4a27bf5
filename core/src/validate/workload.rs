//! Workloads: inference services and training jobs.

use super::meta::{meta_errors, Scope};
use super::names::dns1123_label;
use super::template::template_errors;
use super::{check_le, check_range, MAX_REPLICAS, MAX_SECONDS};
use crate::error::{Error, FieldErrors};
use crate::model::{
    priority, Autoscaling, InferenceServiceSpec, Probe, ProbeAction, ScalingMetric,
    TrainingJobSpec, Workload, WorkloadSpec,
};

/// Every problem of `w`, or `Ok`.
pub fn validate_workload(w: &Workload) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    workload_errors(w, &mut errs);
    errs.into_result()
}

/// Checks an update of `old` to `new`: `new` must be valid and keep its kind.
pub fn validate_workload_update(old: &Workload, new: &Workload) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    workload_errors(new, &mut errs);
    if old.kind() != new.kind() {
        errs.push(
            "spec",
            format!("cannot change kind from {} to {}", old.kind(), new.kind()),
        );
    }
    errs.into_result()
}

/// Records every problem of `w` in `errs` (paths from the root: `meta.name`, `spec...`).
pub fn workload_errors(w: &Workload, errs: &mut FieldErrors) {
    meta_errors(&w.meta, Scope::Namespaced, "meta", errs);
    template_errors(w.spec.template(), w.kind(), "spec.template", errs);
    match &w.spec {
        WorkloadSpec::Inference(s) => inference_errors(s, errs),
        WorkloadSpec::Training(s) => training_errors(s, errs),
    }
    check_range(
        errs,
        "spec.priority",
        w.spec.priority(),
        priority::MIN,
        priority::MAX,
    );
    if let Err(e) = dns1123_label(w.spec.queue()) {
        errs.push("spec.queue", e);
    }
}

fn inference_errors(s: &InferenceServiceSpec, errs: &mut FieldErrors) {
    let r = &s.replicas;
    if r.max == 0 {
        errs.push("spec.replicas.max", "must be at least 1");
    }
    if r.max > MAX_REPLICAS {
        errs.push(
            "spec.replicas.max",
            format!("must be at most {MAX_REPLICAS}"),
        );
    }
    check_le(errs, "spec.replicas.min", r.min, "spec.replicas.max", r.max);
    if r.min <= r.max && (r.desired < r.min || r.desired > r.max) {
        errs.push(
            "spec.replicas.desired",
            format!(
                "must be between min ({}) and max ({}), got {}",
                r.min, r.max, r.desired
            ),
        );
    }
    if let Some(p) = &s.readiness_probe {
        probe_errors(p, "spec.readiness_probe", false, errs);
    }
    if let Some(p) = &s.liveness_probe {
        probe_errors(p, "spec.liveness_probe", true, errs);
    }
    if let Some(a) = &s.autoscaling {
        if !a.target.is_finite() || a.target <= 0.0 {
            errs.push(
                "spec.autoscaling.target",
                format!("must be a finite number > 0, got {}", a.target),
            );
        }
        check_range(
            errs,
            "spec.autoscaling.scale_down_delay_seconds",
            a.scale_down_delay_seconds,
            0,
            MAX_SECONDS,
        );
        let max_window = Autoscaling::MAX_WINDOW_SECONDS;
        check_range(
            errs,
            "spec.autoscaling.stable_window_seconds",
            a.stable_window_seconds,
            1,
            max_window,
        );
        check_range(
            errs,
            "spec.autoscaling.panic_window_seconds",
            a.panic_window_seconds,
            1,
            a.stable_window_seconds.clamp(1, max_window),
        );
        match (&a.metric, &a.prometheus) {
            (ScalingMetric::Prometheus, None) => errs.push(
                "spec.autoscaling.prometheus",
                "metric prometheus needs the metric to scrape: prometheus: {name: NAME}",
            ),
            (ScalingMetric::Prometheus, Some(m)) => {
                let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
                if m.name.is_empty()
                    || !m.name.chars().all(valid)
                    || m.name.starts_with(|c: char| c.is_ascii_digit())
                {
                    errs.push(
                        "spec.autoscaling.prometheus.name",
                        format!("{:?} is not a Prometheus metric name", m.name),
                    );
                }
                if !m.path.starts_with('/') {
                    errs.push(
                        "spec.autoscaling.prometheus.path",
                        format!("must start with '/', got {:?}", m.path),
                    );
                }
            }
            (_, Some(_)) => errs.push(
                "spec.autoscaling.prometheus",
                "is only for metric prometheus",
            ),
            (_, None) => {}
        }
        if matches!(
            a.metric,
            ScalingMetric::ComputeUtilization | ScalingMetric::DeviceUtilization
        ) {
            errs.push(
                "spec.autoscaling.metric",
                "compute_utilization and device_utilization are not measured yet: \
                 scale on concurrency or requests_per_second",
            );
        }
    }
    let u = &s.rolling_update;
    if u.max_surge == 0 && u.max_unavailable == 0 {
        errs.push(
            "spec.rolling_update",
            "max_surge and max_unavailable must not both be 0",
        );
    }
}

fn probe_errors(p: &Probe, path: &str, liveness: bool, errs: &mut FieldErrors) {
    if let ProbeAction::HttpGet {
        path: http_path, ..
    } = &p.action
    {
        if !http_path.starts_with('/') {
            errs.push(format!("{path}.http_get.path"), "must start with '/'");
        }
    }
    for (field, value) in [
        ("period_seconds", p.period_seconds),
        ("timeout_seconds", p.timeout_seconds),
        ("failure_threshold", p.failure_threshold),
        ("success_threshold", p.success_threshold),
    ] {
        if value == 0 {
            errs.push(format!("{path}.{field}"), "must be at least 1");
        }
    }
    check_range(
        errs,
        &format!("{path}.initial_delay_seconds"),
        p.initial_delay_seconds,
        0,
        MAX_SECONDS,
    );
    check_le(
        errs,
        &format!("{path}.timeout_seconds"),
        p.timeout_seconds,
        &format!("{path}.period_seconds"),
        p.period_seconds,
    );
    if liveness && p.success_threshold > 1 {
        errs.push(
            format!("{path}.success_threshold"),
            "must be 1 for a liveness probe",
        );
    }
}

fn training_errors(s: &TrainingJobSpec, errs: &mut FieldErrors) {
    let w = &s.workers;
    if w.min == 0 {
        errs.push("spec.workers.min", "must be at least 1");
    }
    check_le(errs, "spec.workers.min", w.min, "spec.workers.max", w.max);
    if w.max > MAX_REPLICAS {
        errs.push(
            "spec.workers.max",
            format!("must be at most {MAX_REPLICAS}"),
        );
    }
    if s.master_port == 0 {
        errs.push("spec.master_port", "must be between 1 and 65535");
    }
    let r = &s.retry;
    if r.backoff_seconds == 0 {
        errs.push("spec.retry.backoff_seconds", "must be at least 1");
    }
    check_le(
        errs,
        "spec.retry.backoff_seconds",
        r.backoff_seconds,
        "spec.retry.max_backoff_seconds",
        r.max_backoff_seconds,
    );
    check_range(
        errs,
        "spec.retry.max_backoff_seconds",
        r.max_backoff_seconds,
        0,
        MAX_SECONDS,
    );
    check_range(
        errs,
        "spec.grace_period_seconds",
        s.grace_period_seconds,
        0,
        MAX_SECONDS,
    );
}
