//! Hostile specs for property tests: a valid service or job with up to three places replaced
//! by values no sane client sends (huge numbers, unicode and control characters, long strings,
//! big lists, deep nesting, wrong types) or given unknown keys; and the check that a rejection
//! names its field.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::error::FieldErrors;
use crate::Error;

/// A valid inference service as a person would write it (the domain's YAML form).
pub const SERVICE: &str = r#"
meta:
  name: chat
  namespace: team-a
  labels: {app: chat}
spec:
  inference:
    template:
      command: [python, -m, serve]
      args: [--port, "8000"]
      env: [{name: HF_HOME, value: /cache}]
      resources:
        compute: 4
        memory: 64Gi
        accelerator: {memory: 80Gi, max_devices: 2, interconnect: nvlink}
      placement:
        node_selector: "zone in (a,b)"
        tolerations: [{key: gpu, operator: Exists}]
    replicas: {min: 1, max: 4, desired: 2}
    readiness_probe:
      action: {http_get: {path: /healthz}}
    autoscaling: {target: 8}
"#;

/// A valid training job (the domain's YAML form).
pub const JOB: &str = r#"
meta: {name: pretrain, namespace: team-a}
spec:
  training:
    template:
      command: [torchrun, train.py]
      resources: {compute: 16, memory: 256Gi, accelerator: {memory: 640Gi, min_devices: 8, max_devices: 8}}
    workers: {min: 2, max: 4}
    preemptible: true
    retry: {max_restarts: 3}
    grace_period_seconds: 60
"#;

/// The valid service (`true`) or training job the mutations start from.
pub fn base(which: bool) -> Value {
    serde_yaml::from_str(if which { SERVICE } else { JOB }).expect("base spec")
}

/// Values no sane client sends.
fn hostile() -> impl Strategy<Value = Value> {
    let nested = |depth: usize| {
        let mut v = json!("bottom");
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    };
    prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e308)),
        Just(json!(-0.5)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!({})),
        Just(json!([])),
        Just(json!("")),
        Just(json!("名前-😀-\u{202e}-ﷺ")),
        Just(json!("a\0b\nc\td")),
        Just(json!("../../etc/passwd")),
        Just(json!("18446744073709551616Gi")),
        Just(json!("1e400")),
        Just(Value::String("x".repeat(70_000))),
        Just(Value::Array(vec![json!("a"); 2_000])),
        Just(nested(100)),
        "\\PC{0,40}".prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
    ]
}

/// Every path to a value inside `v` (object keys and array indexes).
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, seg| match v {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    })
}

/// `base` with up to three places replaced by hostile values, or given an extra key.
pub fn mutated() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::collection::vec(
            (any::<prop::sample::Index>(), hostile(), any::<bool>()),
            1..4,
        ),
    )
        .prop_map(|(which, edits)| {
            let mut v = base(which);
            for (index, value, insert) in edits {
                let mut all = Vec::new();
                paths(&v, &mut Vec::new(), &mut all);
                let path = index.get(&all).clone();
                let Some(target) = at_mut(&mut v, &path) else {
                    continue;
                };
                match target {
                    Value::Object(m) if insert => {
                        m.insert("unexpected_ключ".into(), value);
                    }
                    t => *t = value,
                }
            }
            v
        })
}

/// The field errors of a rejection; panics on any other error.
pub fn field_errors(e: Error) -> FieldErrors {
    match e {
        Error::Invalid(fe) => fe,
        other => panic!("a rejection that is not a field error: {other}"),
    }
}

/// Every error names a field under `meta` or `spec`, with a message.
pub fn assert_named(fe: &FieldErrors) {
    assert!(!fe.0.is_empty());
    for e in &fe.0 {
        let root = e.path.split(['.', '[']).next().unwrap_or_default();
        assert!(
            matches!(root, "meta" | "spec"),
            "error names no field under meta or spec: {:?}: {}",
            e.path,
            e.message
        );
        assert!(!e.message.trim().is_empty(), "empty message at {}", e.path);
    }
}

/// `n` hostile specs, the same on every run (for tests that send each one somewhere slow).
pub fn samples(n: usize) -> Vec<Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = mutated();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a sample").current())
        .collect()
}

/// `n` hostile specs that still decode as workloads (the rest of the samples are refused by
/// decoding alone), the same on every run.
pub fn workloads(n: usize) -> Vec<crate::model::Workload> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = mutated();
    let mut out = Vec::new();
    for _ in 0..n * 100 {
        let v = strategy.new_tree(&mut runner).expect("a sample").current();
        if let Ok(w) = serde_json::from_value(v) {
            out.push(w);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// A hostile spec in the domain form (`meta`, `spec.inference` or `spec.training`) as a
/// `unictl` manifest (`apiVersion`, `kind`, `metadata`, `spec`), named `name` unless the
/// mutation changed the name.
pub fn as_manifest(v: &Value, name: &str) -> Value {
    let mut meta = v.get("meta").cloned().unwrap_or(Value::Null);
    if let Some(m) = meta.as_object_mut() {
        if matches!(
            m.get("name").and_then(Value::as_str),
            Some("chat" | "pretrain")
        ) {
            m.insert("name".into(), json!(name));
        }
    }
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    let (kind, inner) = match spec.as_object() {
        Some(s) if s.contains_key("training") => ("TrainingJob", s["training"].clone()),
        Some(s) if s.contains_key("inference") => ("InferenceService", s["inference"].clone()),
        _ => ("InferenceService", spec.clone()),
    };
    json!({"apiVersion": "universal/v1", "kind": kind, "metadata": meta, "spec": inner})
}
