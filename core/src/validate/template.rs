//! The replica template: command, environment, resources and placement.

use super::names::{env_var_name, label_key};
use super::{check_bytes, check_le, check_len, check_name_lists, MAX_DEVICES_PER_REPLICA};
use crate::error::FieldErrors;
use crate::model::{
    AcceleratorRequest, Placement, ReplicaTemplate, Resources, TaintEffect, TolerationOperator,
    WorkloadKind,
};

/// Environment variables Universal sets itself; a template may not set them.
pub const RESERVED_ENV: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "PORT",
];

/// Most entries in `command` and `args` together, and their total bytes (Linux refuses a
/// single argument over 128 KiB too).
pub const MAX_ARGS: usize = 1024;
pub const MAX_ARGS_BYTES: usize = 128 * 1024;
/// Most environment variables, and their total bytes (names and values).
pub const MAX_ENV: usize = 1024;
pub const MAX_ENV_BYTES: usize = 128 * 1024;
/// Longest path (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Most tolerations of one template.
pub const MAX_TOLERATIONS: usize = 64;

pub(crate) fn template_errors(
    t: &ReplicaTemplate,
    kind: WorkloadKind,
    path: &str,
    errs: &mut FieldErrors,
) {
    match t.command.first() {
        None => errs.push(format!("{path}.command"), "required"),
        Some(c) if c.trim().is_empty() => {
            errs.push(format!("{path}.command[0]"), "must not be empty")
        }
        Some(_) => {}
    }
    let args = t.command.len() + t.args.len();
    check_len(
        errs,
        &format!("{path}.args"),
        "entries in command and args",
        args,
        MAX_ARGS,
    );
    let arg_bytes: usize = t.command.iter().chain(&t.args).map(String::len).sum();
    check_bytes(
        errs,
        &format!("{path}.args"),
        "command and args",
        arg_bytes,
        MAX_ARGS_BYTES,
    );
    check_len(
        errs,
        &format!("{path}.env"),
        "variables",
        t.env.len(),
        MAX_ENV,
    );
    let env_bytes: usize = t.env.iter().map(|e| e.name.len() + e.value.len()).sum();
    check_bytes(
        errs,
        &format!("{path}.env"),
        "names and values",
        env_bytes,
        MAX_ENV_BYTES,
    );
    for (i, e) in t.env.iter().enumerate() {
        let at = format!("{path}.env[{i}].name");
        if let Err(msg) = env_var_name(&e.name) {
            errs.push(at, msg);
        } else if RESERVED_ENV.contains(&e.name.as_str()) {
            errs.push(at, format!("{} is set by Universal", e.name));
        } else if t.env[..i].iter().any(|o| o.name == e.name) {
            errs.push(at, format!("duplicate {:?}", e.name));
        }
    }
    if !t.working_dir.is_empty() && !t.working_dir.starts_with('/') {
        errs.push(format!("{path}.working_dir"), "must be an absolute path");
    }
    check_bytes(
        errs,
        &format!("{path}.working_dir"),
        "path",
        t.working_dir.len(),
        MAX_PATH_BYTES,
    );
    for (field, id) in [
        ("run_as_user", t.run_as_user),
        ("run_as_group", t.run_as_group),
    ] {
        if id == Some(u32::MAX) {
            errs.push(
                format!("{path}.{field}"),
                "4294967295 is not an id (to the kernel it means \"unchanged\")",
            );
        }
    }
    resources_errors(&t.resources, kind, &format!("{path}.resources"), errs);
    placement_errors(&t.placement, &format!("{path}.placement"), errs);
}

fn resources_errors(r: &Resources, kind: WorkloadKind, path: &str, errs: &mut FieldErrors) {
    if r.compute_milli == 0 {
        errs.push(format!("{path}.compute"), "must be greater than 0");
    }
    if r.memory_bytes == 0 {
        errs.push(format!("{path}.memory"), "must be greater than 0");
    }
    if let Some(a) = &r.accelerator {
        accelerator_errors(a, kind, &format!("{path}.accelerator"), errs);
    }
}

fn accelerator_errors(
    a: &AcceleratorRequest,
    kind: WorkloadKind,
    path: &str,
    errs: &mut FieldErrors,
) {
    if a.memory_bytes == 0 {
        errs.push(format!("{path}.memory"), "must be greater than 0");
    }
    if !a.bf16_tflops.is_finite() || a.bf16_tflops < 0.0 {
        errs.push(
            format!("{path}.bf16_tflops"),
            format!("must be a finite number >= 0, got {}", a.bf16_tflops),
        );
    }
    if a.min_devices == 0 {
        errs.push(format!("{path}.min_devices"), "must be at least 1");
    }
    check_le(
        errs,
        &format!("{path}.min_devices"),
        a.min_devices,
        &format!("{path}.max_devices"),
        a.max_devices,
    );
    if a.max_devices > MAX_DEVICES_PER_REPLICA {
        errs.push(
            format!("{path}.max_devices"),
            format!("must be at most {MAX_DEVICES_PER_REPLICA}"),
        );
    }
    if a.shareable && (a.max_devices != 1 || a.min_devices != 1) {
        errs.push(
            format!("{path}.shareable"),
            "a fractional (shareable) request must use exactly one device: set min_devices and \
             max_devices to 1",
        );
    }
    if a.interconnect == crate::model::Interconnect::SameNode
        && kind == WorkloadKind::InferenceService
    {
        errs.push(
            format!("{path}.interconnect"),
            "same_node applies to training jobs; an inference replica is always on one node",
        );
    }
    check_name_lists(
        errs,
        path,
        "allowed_models",
        &a.allowed_models,
        "forbidden_models",
        &a.forbidden_models,
    );
}

fn placement_errors(p: &Placement, path: &str, errs: &mut FieldErrors) {
    check_name_lists(
        errs,
        path,
        "allowed_classes",
        &p.allowed_classes,
        "forbidden_classes",
        &p.forbidden_classes,
    );
    check_len(
        errs,
        &format!("{path}.tolerations"),
        "tolerations",
        p.tolerations.len(),
        MAX_TOLERATIONS,
    );
    for (i, t) in p.tolerations.iter().enumerate() {
        let at = format!("{path}.tolerations[{i}]");
        if !t.key.is_empty() {
            if let Err(e) = label_key(&t.key) {
                errs.push(format!("{at}.key"), e);
            }
        }
        match t.operator {
            TolerationOperator::Exists if !t.value.is_empty() => {
                errs.push(format!("{at}.value"), "must be empty with operator Exists")
            }
            TolerationOperator::Equal if t.key.is_empty() => errs.push(
                format!("{at}.key"),
                "required with operator Equal (use Exists to tolerate every taint)",
            ),
            _ => {}
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            errs.push(
                format!("{at}.toleration_seconds"),
                "only allowed with effect NoExecute",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_identity_but_the_kernels_unchanged_marker_is_valid() {
        let mut t = ReplicaTemplate {
            command: vec!["serve".into()],
            resources: Resources {
                compute_milli: 1000,
                memory_bytes: 1 << 30,
                accelerator: None,
            },
            run_as_user: Some(0),
            run_as_group: Some(65534),
            ..ReplicaTemplate::default()
        };
        let mut errs = FieldErrors::default();
        template_errors(&t, WorkloadKind::TrainingJob, "spec.template", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        t.run_as_user = Some(u32::MAX);
        t.run_as_group = Some(u32::MAX);
        template_errors(&t, WorkloadKind::TrainingJob, "spec.template", &mut errs);
        let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.template.run_as_user", "spec.template.run_as_group"]
        );
    }
}
