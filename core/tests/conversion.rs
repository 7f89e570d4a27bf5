//! Domain <-> wire conversions: round trips, defaults and error paths.

use std::collections::BTreeMap;

use uni_core::convert::{timestamp_to_proto, workload_kind_filter};
use uni_core::model::*;
use uni_core::Error;
use uni_proto::v1 as pb;

fn labels() -> BTreeMap<String, String> {
    [("app", "chat"), ("universal.dev/team", "ml")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        labels: labels(),
        annotations: [("note".to_string(), "x".to_string())].into(),
        uid: "u-1".into(),
        generation: 3,
        resource_version: 42,
        created: UnixMillis(1_700_000_000_123),
        deleted: Some(UnixMillis(1_700_000_100_000)),
        ..ObjectMeta::namespaced("team-a", name)
    }
}

fn template() -> ReplicaTemplate {
    ReplicaTemplate {
        command: vec!["python".into(), "-m".into(), "serve".into()],
        args: vec!["--model".into(), "llama".into()],
        env: vec![EnvVar::new("HF_HOME", "/cache")],
        working_dir: "/srv".into(),
        resources: Resources {
            compute_milli: 1500,
            memory_bytes: 64 << 30,
            accelerator: Some(AcceleratorRequest {
                memory_bytes: 80 << 30,
                bf16_tflops: 312.5,
                min_devices: 1,
                max_devices: 2,
                shareable: false,
                interconnect: Interconnect::NvLink,
                allowed_models: vec!["H100-SXM5-80GB".into()],
                forbidden_models: vec!["T4".into()],
            }),
        },
        placement: Placement {
            node_selector: Selector::parse("zone in (a,b),!spot").expect("selector"),
            allowed_classes: vec!["gpu-h100-sxm".into()],
            forbidden_classes: vec!["cpu-small".into()],
            tolerations: vec![Toleration {
                key: "gpu".into(),
                operator: TolerationOperator::Equal,
                value: "reserved".into(),
                effect: Some(TaintEffect::NoExecute),
                toleration_seconds: Some(60),
            }],
            prefer: Preference::Speed,
        },
        run_as_user: Some(1000),
        run_as_group: Some(0),
    }
}

fn status() -> WorkloadStatus {
    WorkloadStatus {
        phase: WorkloadPhase::Ready,
        conditions: vec![Condition {
            condition_type: "Ready".into(),
            status: ConditionStatus::True,
            reason: "MinimumReplicasReady".into(),
            message: "2 of 2".into(),
            last_transition: UnixMillis(5),
            observed_generation: 3,
        }],
        observed_generation: 3,
        replicas_desired: 2,
        replicas_placed: 2,
        replicas_ready: 1,
        replicas: vec![ReplicaView {
            replica: 1,
            node: "gpu-01".into(),
            address: "10.0.0.1".into(),
            port: 31000,
            devices: vec![DeviceBinding {
                index: 3,
                uuid: "GPU-abc".into(),
                share_milli: 500,
                memory_bytes: 40 << 30,
            }],
            compute_milli: 1500,
            memory_bytes: 64 << 30,
            generation: 3,
            revision: 2,
            draining: true,
            phase: ReplicaPhase::OomKilled,
            exit_code: Some(137),
            signal: Some(9),
            restarts: 2,
            message: "out of memory".into(),
            updated: UnixMillis(77),
        }],
        reason: "Ready".into(),
        message: String::new(),
        restarts: 0,
        started: Some(UnixMillis(10)),
        completed: None,
        cost_per_hour: 4.25,
        endpoint: "https://gw:7080/ml/llm/".into(),
        revision: 2,
        updated_replicas: 1,
        updated_ready_replicas: 1,
        rollout: "rolling to revision 2: 1 of 2 updated, 1 ready".into(),
        // Templates stay where the workload is stored: the wire carries the summary.
        revisions: vec![TemplateRevision {
            revision: 2,
            hash: "00ff00ff00ff00ff".into(),
            created: UnixMillis(9),
            template: None,
            summary: "serve --model b".into(),
        }],
    }
}

fn inference() -> Workload {
    Workload {
        meta: meta("chat"),
        spec: WorkloadSpec::Inference(InferenceServiceSpec {
            template: template(),
            replicas: ReplicaCount {
                min: 1,
                max: 4,
                desired: 2,
            },
            port: 8000,
            readiness_probe: Some(Probe {
                action: ProbeAction::HttpGet {
                    path: "/healthz".into(),
                    port: 0,
                },
                initial_delay_seconds: 5,
                ..Probe::default()
            }),
            liveness_probe: Some(Probe {
                action: ProbeAction::TcpSocket { port: 8001 },
                ..Probe::default()
            }),
            autoscaling: Some(Autoscaling {
                metric: ScalingMetric::Prometheus,
                target: 20.0,
                scale_down_delay_seconds: 120,
                stable_window_seconds: 30,
                panic_window_seconds: 3,
                prometheus: Some(PrometheusMetric {
                    name: "vllm:num_requests_waiting".into(),
                    path: "/metrics".into(),
                    port: 8001,
                }),
            }),
            priority: 950,
            rolling_update: RollingUpdate {
                max_surge: 0,
                max_unavailable: 1,
            },
            queue: "research".into(),
        }),
        status: status(),
    }
}

fn training() -> Workload {
    Workload {
        meta: meta("pretrain"),
        spec: WorkloadSpec::Training(TrainingJobSpec {
            // Root asked for explicitly, group left to the policy: Some(0) and None both
            // survive the wire.
            template: ReplicaTemplate {
                run_as_user: Some(0),
                run_as_group: None,
                ..template()
            },
            workers: WorkerCount { min: 2, max: 8 },
            master_port: 29400,
            retry: RetryPolicy {
                max_restarts: 0,
                backoff_seconds: 5,
                max_backoff_seconds: 60,
            },
            preemptible: true,
            grace_period_seconds: 0,
            priority: 0,
            queue: "batch".into(),
            // Zero (delete at once) and unset (the scheduler's default) differ.
            ttl_seconds_after_finished: Some(0),
        }),
        status: WorkloadStatus {
            phase: WorkloadPhase::Preempted,
            restarts: 1,
            completed: Some(UnixMillis(99)),
            ..WorkloadStatus::default()
        },
    }
}

#[test]
fn workloads_round_trip() {
    for w in [inference(), training()] {
        let wire = pb::Workload::from(&w);
        let back = Workload::try_from(&wire).expect("valid wire workload");
        assert_eq!(back, w);
    }
}

#[test]
fn wire_uses_canonical_quantities() {
    let wire = pb::Workload::from(inference());
    let Some(pb::workload::Spec::Inference(spec)) = wire.spec else {
        panic!("inference spec expected");
    };
    let resources = spec.template.and_then(|t| t.resources).expect("resources");
    assert_eq!(resources.compute, "1500m");
    assert_eq!(resources.memory, "64Gi");
    assert_eq!(resources.accelerator.expect("accelerator").memory, "80Gi");
}

#[test]
fn nodes_round_trip() {
    let node = Node {
        meta: ObjectMeta {
            labels: labels(),
            ..ObjectMeta::cluster("gpu-01.rack-3")
        },
        spec: NodeSpec {
            taints: vec![Taint {
                key: "gpu".into(),
                value: "reserved".into(),
                effect: TaintEffect::PreferNoSchedule,
                added: UnixMillis(3),
            }],
            cordoned: true,
        },
        status: NodeStatus {
            inventory: Inventory {
                hostname: "gpu-01".into(),
                arch: "x86_64".into(),
                os: "linux".into(),
                kernel_version: "6.8".into(),
                cpu: CpuInfo {
                    model: "AMD EPYC 9654".into(),
                    vendor: "AMD".into(),
                    sockets: 2,
                    cores: 192,
                    threads: 384,
                    ucu_per_core: 1.25,
                },
                memory_bytes: 1 << 40,
                numa_nodes: vec![NumaNode {
                    id: 0,
                    cpus: vec![0, 1, 2],
                    memory_bytes: 1 << 39,
                }],
                accelerators: vec![AcceleratorDevice {
                    index: 0,
                    uuid: "GPU-0".into(),
                    model: "H100-SXM5-80GB".into(),
                    memory_bytes: 80 << 30,
                    mig_mode: MigMode::Disabled,
                    nvlink_peers: vec![1, 2, 3],
                    numa_node: Some(0),
                    pci_bus_id: "0000:18:00.0".into(),
                    bf16_tflops: 989.0,
                    healthy: true,
                }],
                driver_version: "550.54".into(),
            },
            capacity: ResourceAmounts::devices(8, 80 << 30),
            allocatable: ResourceAmounts {
                compute_milli: 240_000,
                ..ResourceAmounts::devices(8, 80 << 30)
            },
            allocated: ResourceAmounts {
                compute_milli: 1500,
                memory_bytes: 1 << 30,
                device_milli: 500,
                device_memory_bytes: 40 << 30,
            },
            devices: vec![DeviceUsage {
                index: 0,
                allocated_milli: 500,
                allocated_memory_bytes: 40 << 30,
            }],
            conditions: vec![Condition::new(
                "Ready",
                ConditionStatus::True,
                "AgentReady",
                "",
            )],
            ready: true,
            draining: true,
            last_heartbeat: UnixMillis(1234),
            agent_version: "0.1.0".into(),
            address: "10.0.0.1".into(),
            node_class: "gpu-h100-sxm".into(),
            price_per_hour: 98.32,
            agent_endpoint: "http://10.0.0.5:7072".into(),
            replicas: 1,
        },
    };
    let back = Node::try_from(pb::Node::from(&node)).expect("valid");
    assert_eq!(back, node);
}

#[test]
fn queues_round_trip() {
    let queue = Queue {
        meta: ObjectMeta::cluster("research"),
        spec: QueueSpec {
            guaranteed: Quota {
                compute_milli: Some(64_000),
                memory_bytes: Some(512 << 30),
                devices: Some(8),
                device_memory_bytes: None,
            },
            max: Quota {
                compute_milli: None,
                memory_bytes: Some(0),
                devices: Some(16),
                device_memory_bytes: Some(1 << 40),
            },
            priority: 0,
            weight: 3,
            parent: "org".into(),
            borrowing_limit: Quota {
                devices: Some(4),
                ..Quota::default()
            },
            lending_limit: Quota {
                compute_milli: Some(8_000),
                ..Quota::default()
            },
        },
        status: QueueStatus {
            usage: ResourceAmounts::devices(2, 80),
            pending_workloads: 1,
            running_workloads: 2,
            borrowed: ResourceAmounts::devices(1, 80),
            lent: ResourceAmounts::ZERO,
        },
    };
    let wire = pb::Queue::from(&queue);
    let spec = wire.spec.as_ref().expect("spec");
    assert_eq!(
        spec.guaranteed.as_ref().map(|q| q.compute.as_str()),
        Some("64")
    );
    assert_eq!(spec.max.as_ref().map(|q| q.compute.as_str()), Some(""));
    assert_eq!(Queue::try_from(wire).expect("valid"), queue);
}

#[test]
fn events_and_summaries_round_trip() {
    let event = Event {
        meta: ObjectMeta::namespaced("team-a", "chat.17a"),
        involved: ObjectRef {
            kind: "Workload".into(),
            namespace: "team-a".into(),
            name: "chat".into(),
            uid: "u-1".into(),
        },
        event_type: EventType::Warning,
        reason: "Unschedulable".into(),
        message: "no node has 80Gi of device memory".into(),
        first_seen: UnixMillis(1),
        last_seen: UnixMillis(2),
        count: 7,
        source: EventSource {
            component: "scheduler".into(),
            node: String::new(),
        },
    };
    assert_eq!(
        Event::try_from(pb::Event::from(&event)).expect("valid"),
        event
    );

    let summary = ClusterSummary {
        capacity: ResourceAmounts::devices(8, 80),
        allocatable: ResourceAmounts::devices(8, 80),
        allocated: ResourceAmounts::devices(1, 80),
        device_models: vec![DeviceModelSummary {
            model: "H100".into(),
            devices: 8,
            memory_bytes_per_device: 80,
            memory_bytes: 640,
            allocated_milli: 1000,
            allocated_memory_bytes: 80,
            nodes: 1,
            unhealthy: 0,
        }],
        node_classes: vec![NodeClassSummary {
            node_class: "gpu".into(),
            nodes: 1,
            allocatable: ResourceAmounts::devices(8, 80),
            allocated: ResourceAmounts::ZERO,
        }],
        nodes: NodeCounts {
            total: 2,
            ready: 1,
            not_ready: 1,
            cordoned: 0,
        },
        workloads: WorkloadCounts {
            total: 3,
            pending: 1,
            running: 2,
            succeeded: 0,
            failed: 0,
        },
        price_per_hour: 98.0,
        allocated_price_per_hour: 12.25,
        store_alarms: vec!["NOSPACE".into()],
        store_db_size_bytes: 1 << 30,
    };
    assert_eq!(
        ClusterSummary::try_from(pb::ClusterSummary::from(&summary)).expect("valid"),
        summary
    );
}

#[test]
fn unset_wire_fields_get_documented_defaults() {
    let wire = pb::Workload {
        meta: Some(pb::ObjectMeta {
            name: "chat".into(),
            ..Default::default()
        }),
        spec: Some(pb::workload::Spec::Inference(pb::InferenceServiceSpec {
            template: Some(pb::ReplicaTemplate {
                command: vec!["serve".into()],
                resources: Some(pb::Resources {
                    compute: "1".into(),
                    memory: "1Gi".into(),
                    accelerator: Some(pb::AcceleratorRequest {
                        memory: "10Gi".into(),
                        min_devices: 2,
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            replicas: Some(pb::ReplicaCount {
                min: 2,
                max: 0,
                desired: None,
            }),
            readiness_probe: Some(pb::Probe {
                action: Some(pb::probe::Action::HttpGet(pb::HttpGetAction::default())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        status: None,
    };
    let w = Workload::try_from(&wire).expect("valid");
    assert_eq!(w.meta.namespace, DEFAULT_NAMESPACE);
    let WorkloadSpec::Inference(s) = &w.spec else {
        panic!("inference expected");
    };
    assert_eq!(
        s.replicas,
        ReplicaCount {
            min: 2,
            max: 2,
            desired: 2
        }
    );
    assert_eq!(s.priority, priority::HIGH);
    assert_eq!(s.queue, DEFAULT_QUEUE);
    assert_eq!(s.rolling_update, RollingUpdate::default());
    let probe = s.readiness_probe.as_ref().expect("probe");
    assert_eq!(
        probe.action,
        ProbeAction::HttpGet {
            path: "/".into(),
            port: 0
        }
    );
    assert_eq!(probe.period_seconds, Probe::DEFAULT_PERIOD_SECONDS);
    let acc = s
        .template
        .resources
        .accelerator
        .as_ref()
        .expect("accelerator");
    assert_eq!((acc.min_devices, acc.max_devices), (2, 2));
    assert_eq!(
        (s.template.run_as_user, s.template.run_as_group),
        (None, None),
        "unset identity stays unset: the policy or the agent chooses"
    );

    let job = pb::Workload {
        spec: Some(pb::workload::Spec::Training(pb::TrainingJobSpec::default())),
        ..Default::default()
    };
    let WorkloadSpec::Training(t) = Workload::try_from(job).expect("valid").spec else {
        panic!("training expected");
    };
    assert_eq!(t, TrainingJobSpec::default());
}

#[test]
fn conversion_errors_name_every_field() {
    let wire = pb::Workload {
        meta: Some(pb::ObjectMeta::default()),
        spec: Some(pb::workload::Spec::Training(pb::TrainingJobSpec {
            template: Some(pb::ReplicaTemplate {
                resources: Some(pb::Resources {
                    compute: "-1".into(),
                    memory: "12Qi".into(),
                    accelerator: Some(pb::AcceleratorRequest {
                        memory: "lots".into(),
                        interconnect: 99,
                        ..Default::default()
                    }),
                }),
                placement: Some(pb::Placement {
                    node_selector: "zone in".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            master_port: 70000,
            ..Default::default()
        })),
        status: None,
    };
    let Err(Error::Invalid(errs)) = Workload::try_from(&wire) else {
        panic!("conversion should fail");
    };
    let text = errs.to_string();
    for want in [
        "spec.template.resources.compute: invalid quantity \"-1\": negative quantities are not allowed",
        "spec.template.resources.memory: invalid quantity \"12Qi\": unknown suffix \"Qi\"",
        "spec.template.resources.accelerator.memory: invalid quantity \"lots\": expected a number",
        "spec.template.resources.accelerator.interconnect: unknown enum value 99",
        "spec.template.placement.node_selector: invalid label selector \"zone in\"",
        "spec.master_port: 70000 is not a port",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    assert_eq!(errs.0.len(), 6, "{text}");

    let no_spec = pb::Workload::default();
    let Err(Error::Invalid(errs)) = Workload::try_from(no_spec) else {
        panic!("a workload needs a spec");
    };
    assert_eq!(errs.0[0].path, "spec");
}

#[test]
fn kind_filter_and_timestamps() {
    assert_eq!(workload_kind_filter(0).expect("valid"), None);
    assert_eq!(
        workload_kind_filter(pb::WorkloadKind::TrainingJob as i32).expect("valid"),
        Some(WorkloadKind::TrainingJob)
    );
    assert!(workload_kind_filter(7).is_err());
    let t = timestamp_to_proto(UnixMillis(1_500)).expect("set");
    assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
}
