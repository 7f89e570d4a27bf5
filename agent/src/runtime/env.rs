//! The environment of a replica process: a few variables of the agent's own (PATH, locale),
//! then the template's, then the allocation's (a training worker's RANK, WORLD_SIZE,
//! LOCAL_RANK, MASTER_ADDR, MASTER_PORT from the scheduler), then what the agent owns: PORT,
//! device visibility and share, and the replica's identity. Later entries win.

use std::collections::BTreeMap;

use uni_core::model::{Allocation, DeviceBinding, EnvVar};
use uni_core::units::MILLI_PER_DEVICE;

use super::run_spec::{Kind, RunSpec};

/// Variables passed through from the agent's environment when set.
const INHERITED: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER"];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The agent's variables a replica inherits.
pub fn inherited() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = INHERITED
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env
}

/// Comma-separated device UUIDs (indexes where a binding has no UUID).
pub fn visible_devices(devices: &[DeviceBinding]) -> String {
    devices
        .iter()
        .map(|d| {
            if d.uuid.is_empty() {
                d.index.to_string()
            } else {
                d.uuid.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The share of one device a replica holds, e.g. `0.25`; `1` for whole devices.
pub fn device_share(devices: &[DeviceBinding]) -> String {
    let milli = devices
        .iter()
        .map(|d| d.share_milli.min(MILLI_PER_DEVICE))
        .min()
        .unwrap_or(MILLI_PER_DEVICE);
    let text = format!("{:.3}", f64::from(milli) / f64::from(MILLI_PER_DEVICE));
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Names the file a stop notice (preemption or resize) appears in: JSON with `reason`,
/// `message`, `by`, `deadline` (unix millis; SIGTERM comes with the notice, SIGKILL at the
/// deadline) and, for a resize, `resize_to`.
pub const NOTICE_FILE_VAR: &str = "UNIVERSAL_PREEMPTION_NOTICE_FILE";

/// Sets (or replaces) one variable.
pub fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    env.retain(|(n, _)| n != name);
    env.push((name.to_string(), value));
}

/// The whole environment of one run.
pub fn build(
    spec: &RunSpec,
    alloc: &Allocation,
    base: &[(String, String)],
    node_has_accelerators: bool,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = base.iter().cloned().collect();
    let mut set = |vars: &[EnvVar]| {
        for v in vars {
            env.insert(v.name.clone(), v.value.clone());
        }
    };
    set(&spec.env);
    set(&alloc.env);
    let mut own = vec![
        EnvVar::new("UNIVERSAL_NAMESPACE", &alloc.namespace),
        EnvVar::new("UNIVERSAL_WORKLOAD", &alloc.workload),
        EnvVar::new("UNIVERSAL_REPLICA", alloc.replica.to_string()),
        EnvVar::new("UNIVERSAL_ALLOCATION_ID", &alloc.id),
        EnvVar::new("UNIVERSAL_NODE", &alloc.node),
    ];
    if spec.kind == Kind::Inference && alloc.port != 0 {
        own.push(EnvVar::new("PORT", alloc.port.to_string()));
    }
    if !alloc.devices.is_empty() || node_has_accelerators {
        let visible = visible_devices(&alloc.devices);
        own.push(EnvVar::new("CUDA_VISIBLE_DEVICES", &visible));
        own.push(EnvVar::new(
            "NVIDIA_VISIBLE_DEVICES",
            if visible.is_empty() {
                "void".to_string()
            } else {
                visible
            },
        ));
    }
    if !alloc.devices.is_empty() {
        own.push(EnvVar::new(
            "UNIVERSAL_DEVICE_SHARE",
            device_share(&alloc.devices),
        ));
        let memory = alloc
            .devices
            .iter()
            .map(|d| d.memory_bytes)
            .max()
            .unwrap_or(0);
        if memory > 0 {
            own.push(EnvVar::new(
                "UNIVERSAL_DEVICE_MEMORY_BYTES",
                memory.to_string(),
            ));
        }
    }
    set(&own);
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn inference_gets_port_devices_and_share() {
        let spec = RunSpec {
            kind: Kind::Inference,
            env: vec![EnvVar::new("A", "template"), EnvVar::new("PORT", "1")],
            ..RunSpec::default()
        };
        let alloc = Allocation {
            id: "ns.w.0.x".into(),
            namespace: "ns".into(),
            workload: "w".into(),
            port: 31000,
            devices: vec![DeviceBinding {
                index: 1,
                uuid: "GPU-abc".into(),
                share_milli: 250,
                memory_bytes: 20 << 30,
            }],
            ..Allocation::default()
        };
        let env = build(&spec, &alloc, &[("PATH".into(), "/bin".into())], true);
        assert_eq!(lookup(&env, "PORT"), Some("31000"));
        assert_eq!(lookup(&env, "A"), Some("template"));
        assert_eq!(lookup(&env, "CUDA_VISIBLE_DEVICES"), Some("GPU-abc"));
        assert_eq!(lookup(&env, "NVIDIA_VISIBLE_DEVICES"), Some("GPU-abc"));
        assert_eq!(lookup(&env, "UNIVERSAL_DEVICE_SHARE"), Some("0.25"));
        assert_eq!(lookup(&env, "PATH"), Some("/bin"));
    }

    #[test]
    fn training_keeps_the_schedulers_rank_variables() {
        let spec = RunSpec {
            kind: Kind::Training,
            ..RunSpec::default()
        };
        let alloc = Allocation {
            port: 29500,
            env: vec![
                EnvVar::new("RANK", "1"),
                EnvVar::new("WORLD_SIZE", "2"),
                EnvVar::new("MASTER_ADDR", "10.0.0.1"),
            ],
            ..Allocation::default()
        };
        let env = build(&spec, &alloc, &[], false);
        assert_eq!(lookup(&env, "RANK"), Some("1"));
        assert_eq!(lookup(&env, "MASTER_ADDR"), Some("10.0.0.1"));
        assert_eq!(lookup(&env, "PORT"), None);
        assert_eq!(lookup(&env, "CUDA_VISIBLE_DEVICES"), None);
    }

    #[test]
    fn a_replica_without_devices_on_a_gpu_node_sees_none() {
        let env = build(&RunSpec::default(), &Allocation::default(), &[], true);
        assert_eq!(lookup(&env, "CUDA_VISIBLE_DEVICES"), Some(""));
        assert_eq!(lookup(&env, "NVIDIA_VISIBLE_DEVICES"), Some("void"));
        assert_eq!(device_share(&[]), "1");
    }
}
