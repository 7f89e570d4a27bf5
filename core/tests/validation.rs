//! Validation reports every problem at once, by field path; requests convert and validate in
//! one step.

use uni_core::convert::{queue_from_request, workload_from_request};
use uni_core::error::FieldErrors;
use uni_core::model::*;
use uni_core::testing::hostile::{JOB as JOB_YAML, SERVICE as CHAT_YAML};
use uni_core::validate::{
    validate_node, validate_queue, validate_queue_in_tree, validate_workload,
    validate_workload_update,
};
use uni_core::Error;
use uni_proto::v1 as pb;

fn paths(err: Error) -> Vec<String> {
    match err {
        Error::Invalid(FieldErrors(errs)) => errs.into_iter().map(|e| e.path).collect(),
        other => panic!("expected Invalid, got {other}"),
    }
}

fn message(err: &Error, path: &str) -> String {
    match err {
        Error::Invalid(FieldErrors(errs)) => errs
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("no error at {path}: {err}")),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn written_specs_are_valid_and_defaulted() {
    let chat: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse chat");
    validate_workload(&chat).expect("chat is valid");
    let WorkloadSpec::Inference(s) = &chat.spec else {
        panic!("inference expected");
    };
    assert_eq!(s.priority, priority::HIGH);
    assert_eq!(s.template.resources.compute_milli, 4000);
    assert_eq!(
        s.readiness_probe.as_ref().map(|p| p.period_seconds),
        Some(10)
    );

    let job: Workload = serde_yaml::from_str(JOB_YAML).expect("parse job");
    validate_workload(&job).expect("job is valid");
    assert_eq!(job.spec.gang_size(), 2);
    assert_eq!(job.spec.priority(), priority::NORMAL);

    // Unknown fields are typos, not silently ignored.
    let typo = CHAT_YAML.replace("desired: 2", "desird: 2");
    let err = serde_yaml::from_str::<Workload>(&typo).expect_err("typo");
    assert!(err.to_string().contains("desird"), "{err}");
}

#[test]
fn inference_spec_reports_every_problem_by_path() {
    let mut w: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse");
    w.meta.name = "Chat_Service".into();
    w.meta.labels.insert("bad key!".into(), "v".into());
    let WorkloadSpec::Inference(s) = &mut w.spec else {
        panic!("inference expected");
    };
    s.template.command.clear();
    s.template.env.push(EnvVar::new("1BAD", "x"));
    s.template.env.push(EnvVar::new("RANK", "0"));
    s.template.env.push(EnvVar::new("HF_HOME", "again"));
    s.template.working_dir = "relative/dir".into();
    s.template.resources.memory_bytes = 0;
    if let Some(a) = s.template.resources.accelerator.as_mut() {
        a.shareable = true;
        a.bf16_tflops = f64::NAN;
        a.allowed_models = vec!["A100".into()];
        a.forbidden_models = vec!["A100".into()];
    }
    s.template.placement.tolerations.push(Toleration {
        key: String::new(),
        operator: TolerationOperator::Equal,
        toleration_seconds: Some(5),
        ..Toleration::default()
    });
    s.replicas = ReplicaCount {
        min: 3,
        max: 5,
        desired: 9,
    };
    if let Some(p) = s.readiness_probe.as_mut() {
        p.timeout_seconds = 30;
        p.failure_threshold = 0;
    }
    s.liveness_probe = Some(Probe {
        success_threshold: 2,
        ..Probe::default()
    });
    s.autoscaling = Some(Autoscaling {
        target: -1.0,
        ..Autoscaling::default()
    });
    s.priority = 5000;
    s.rolling_update = RollingUpdate {
        max_surge: 0,
        max_unavailable: 0,
    };
    s.queue = String::new();

    let err = validate_workload(&w).expect_err("invalid");
    let got = paths(err);
    let want = [
        "meta.name",
        "meta.labels",
        "spec.template.command",
        "spec.template.env[1].name",
        "spec.template.env[2].name",
        "spec.template.env[3].name",
        "spec.template.working_dir",
        "spec.template.resources.memory",
        "spec.template.resources.accelerator.bf16_tflops",
        "spec.template.resources.accelerator.shareable",
        "spec.template.resources.accelerator.forbidden_models[0]",
        "spec.template.placement.tolerations[1].key",
        "spec.template.placement.tolerations[1].toleration_seconds",
        "spec.replicas.desired",
        "spec.readiness_probe.failure_threshold",
        "spec.readiness_probe.timeout_seconds",
        "spec.liveness_probe.success_threshold",
        "spec.autoscaling.target",
        "spec.rolling_update",
        "spec.priority",
        "spec.queue",
    ];
    for path in want {
        assert!(got.iter().any(|p| p == path), "missing {path} in {got:?}");
    }
    assert_eq!(got.len(), want.len(), "{got:?}");
}

#[test]
fn training_spec_messages_say_what_is_wrong() {
    let mut w: Workload = serde_yaml::from_str(JOB_YAML).expect("parse");
    let WorkloadSpec::Training(s) = &mut w.spec else {
        panic!("training expected");
    };
    s.workers = WorkerCount { min: 4, max: 2 };
    s.retry.backoff_seconds = 600;
    s.grace_period_seconds = 100_000;
    if let Some(a) = s.template.resources.accelerator.as_mut() {
        a.min_devices = 9;
        a.interconnect = Interconnect::SameNode;
    }
    let err = validate_workload(&w).expect_err("invalid");
    assert_eq!(
        message(&err, "spec.workers.min"),
        "must be <= spec.workers.max (2)"
    );
    assert_eq!(
        message(&err, "spec.retry.backoff_seconds"),
        "must be <= spec.retry.max_backoff_seconds (300)"
    );
    assert!(message(&err, "spec.grace_period_seconds").contains("between 0 and 86400"));
    assert!(message(&err, "spec.template.resources.accelerator.min_devices").contains("<="));
    let text = err.to_string();
    assert!(text.starts_with("invalid request: "), "{text}");
    assert_eq!(paths(err).len(), 4);
}

#[test]
fn updates_keep_the_kind() {
    let chat: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse");
    let mut job: Workload = serde_yaml::from_str(JOB_YAML).expect("parse");
    job.meta = chat.meta.clone();
    validate_workload_update(&chat, &chat).expect("same kind");
    let err = validate_workload_update(&chat, &job).expect_err("kind change");
    assert!(message(&err, "spec").contains("InferenceService to TrainingJob"));
}

#[test]
fn requests_report_conversion_and_validation_problems_together() {
    let chat: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse");
    let mut wire = pb::Workload::from(&chat);
    wire.meta.as_mut().expect("meta").name = "-bad".into();
    let Some(pb::workload::Spec::Inference(spec)) = wire.spec.as_mut() else {
        panic!("inference expected");
    };
    spec.priority = Some(-1);
    let resources = spec
        .template
        .as_mut()
        .and_then(|t| t.resources.as_mut())
        .expect("resources");
    resources.memory = "12Qi".into();

    let err = workload_from_request(&wire).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "invalid request: spec.template.resources.memory: invalid quantity \"12Qi\": unknown \
         suffix \"Qi\"; meta.name: \"-bad\" must consist of lowercase letters, digits and '-', \
         and start and end with a letter or digit; spec.priority: must be between 0 and 1000, \
         got -1"
    );

    let ok = workload_from_request(&pb::Workload::from(&chat)).expect("valid");
    assert_eq!(ok.spec, chat.spec);
}

fn tree_queue(name: &str, parent: &str, devices: Option<u32>) -> Queue {
    Queue {
        meta: ObjectMeta::cluster(name),
        spec: QueueSpec {
            parent: parent.into(),
            guaranteed: Quota {
                devices,
                ..Quota::default()
            },
            ..QueueSpec::default()
        },
        status: QueueStatus::default(),
    }
}

#[test]
fn queue_trees_nest_guarantees_and_have_no_cycles() {
    let org = tree_queue("org", "", Some(8));
    let research = tree_queue("research", "org", Some(5));
    let stored = [org.clone(), research.clone()];
    assert!(validate_queue_in_tree(&research, &stored).is_ok());

    // A child above its parent, and siblings above it together.
    let err = validate_queue_in_tree(&tree_queue("big", "org", Some(9)), &stored)
        .expect_err("above parent");
    assert_eq!(
        message(&err, "spec.guaranteed.devices"),
        "must be <= queue org's spec.guaranteed.devices (8)"
    );
    let err = validate_queue_in_tree(&tree_queue("prod", "org", Some(4)), &stored)
        .expect_err("siblings too much");
    assert!(
        message(&err, "spec.guaranteed.devices").contains("with its siblings' guarantees"),
        "{err}"
    );
    // A parent shrunk below its children.
    let err = validate_queue_in_tree(&tree_queue("org", "", Some(4)), &stored)
        .expect_err("below children");
    assert!(message(&err, "spec.guaranteed.devices").contains("children's guarantees together (5)"));
    // A missing parent, itself, and a cycle.
    let err = validate_queue_in_tree(&tree_queue("x", "nope", None), &stored).expect_err("parent");
    assert_eq!(message(&err, "spec.parent"), "queue nope does not exist");
    let err = validate_queue_in_tree(&tree_queue("x", "x", None), &stored).expect_err("self");
    assert!(message(&err, "spec.parent").contains("its own parent"));
    let err = validate_queue_in_tree(&tree_queue("org", "research", Some(8)), &stored)
        .expect_err("cycle");
    assert!(message(&err, "spec.parent").contains("cycle"), "{err}");
    // Lending more than the guarantee.
    let mut lender = tree_queue("lender", "", Some(2));
    lender.spec.lending_limit.devices = Some(3);
    let err = validate_queue(&lender).expect_err("lending");
    assert_eq!(
        message(&err, "spec.lending_limit.devices"),
        "must be <= spec.guaranteed.devices (2)"
    );
}

#[test]
fn queues_guarantee_at_most_their_maximum() {
    let q = Queue {
        meta: ObjectMeta::cluster("research"),
        spec: QueueSpec {
            guaranteed: Quota {
                compute_milli: Some(64_000),
                memory_bytes: Some(1 << 40),
                devices: Some(9),
                device_memory_bytes: Some(1),
            },
            max: Quota {
                compute_milli: Some(32_000),
                memory_bytes: None,
                devices: Some(8),
                device_memory_bytes: Some(1),
            },
            priority: 500,
            weight: 0,
            ..QueueSpec::default()
        },
        status: QueueStatus::default(),
    };
    let err = validate_queue(&q).expect_err("invalid");
    assert_eq!(
        message(&err, "spec.guaranteed.compute"),
        "must be <= spec.max.compute (32)"
    );
    assert_eq!(
        message(&err, "spec.guaranteed.devices"),
        "must be <= spec.max.devices (8)"
    );
    assert!(message(&err, "spec.weight").contains("between 1 and 1000"));
    assert_eq!(paths(err).len(), 3);

    let mut namespaced = Queue::default();
    namespaced.meta = ObjectMeta::namespaced("team-a", "q");
    let err = validate_queue(&namespaced).expect_err("namespaced queue");
    assert!(message(&err, "meta.namespace").contains("cluster-scoped"));

    let wire = pb::Queue {
        meta: Some(pb::ObjectMeta {
            name: "batch".into(),
            ..Default::default()
        }),
        spec: Some(pb::QueueSpec {
            max: Some(pb::Quota {
                compute: "1.5k".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let q = queue_from_request(&wire).expect("valid");
    assert_eq!(q.spec.max.compute_milli, Some(1_500_000));
    assert_eq!(q.spec.weight, 1);
}

#[test]
fn nodes_use_host_names_and_valid_taints() {
    let mut n = Node::default();
    n.meta.name = "gpu-01.rack-3.example".into();
    n.spec.taints = vec![
        Taint {
            key: "universal.dev/maintenance".into(),
            ..Taint::default()
        },
        Taint {
            key: "universal.dev/maintenance".into(),
            ..Taint::default()
        },
        Taint {
            key: "bad key".into(),
            ..Taint::default()
        },
    ];
    let err = validate_node(&n).expect_err("invalid");
    assert_eq!(
        paths(err),
        vec![
            "spec.taints[1]".to_string(),
            "spec.taints[2].key".to_string()
        ]
    );
}

#[test]
fn fields_that_can_grow_are_capped_and_named() {
    use uni_core::validate::{MAX_ARGS, MAX_ENV_BYTES, MAX_LABELS, MAX_PATH_BYTES};
    let mut w: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse");
    for i in 0..=MAX_LABELS {
        w.meta.labels.insert(format!("l{i}"), "v".into());
    }
    let WorkloadSpec::Inference(s) = &mut w.spec else {
        panic!("inference expected");
    };
    s.template.args = vec!["a".into(); MAX_ARGS];
    s.template
        .env
        .push(EnvVar::new("BIG", "x".repeat(MAX_ENV_BYTES)));
    s.template.working_dir = format!("/{}", "d".repeat(MAX_PATH_BYTES));
    s.template.placement.tolerations = vec![s.template.placement.tolerations[0].clone(); 65];
    let err = validate_workload(&w).expect_err("too large");
    assert!(
        message(&err, "meta.labels").contains("at most 64 labels"),
        "{err}"
    );
    assert!(
        message(&err, "spec.template.args").contains("at most 1024"),
        "{err}"
    );
    assert!(
        message(&err, "spec.template.env").contains("bytes"),
        "{err}"
    );
    assert!(
        message(&err, "spec.template.working_dir").contains("4096"),
        "{err}"
    );
    assert!(
        message(&err, "spec.template.placement.tolerations").contains("64"),
        "{err}"
    );
    // Just under every limit is fine.
    let mut ok: Workload = serde_yaml::from_str(CHAT_YAML).expect("parse");
    let WorkloadSpec::Inference(s) = &mut ok.spec else {
        panic!("inference expected");
    };
    s.template.args = vec!["a".into(); MAX_ARGS - s.template.command.len()];
    validate_workload(&ok).expect("at the limit");
}
