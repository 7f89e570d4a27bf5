//! The gRPC API against a real server on a free port over a real etcd.

mod common;

use std::time::Duration;

use common::{inference, inference_spec, meta, phase, training, with_labels, Api, WAIT};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use uni_core::model::{Allocation, Event, EventType, Node, ObjectMeta, ObjectRef};
use uni_core::store::keys::{AllocationKey, EventKey, NodeKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, RangeOptions};
use uni_proto::v1 as pb;
use uni_proto::v1::log_service_client::LogServiceClient;

fn get(ns: &str, name: &str) -> pb::GetWorkloadRequest {
    pb::GetWorkloadRequest {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn create(w: pb::Workload) -> pb::CreateWorkloadRequest {
    pb::CreateWorkloadRequest {
        workload: Some(w),
        dry_run: false,
    }
}

/// A node as its agent registers it.
fn ready_node(name: &str, address: &str) -> Node {
    let mut node = Node {
        meta: ObjectMeta::cluster(name),
        ..Node::default()
    };
    node.status.ready = true;
    node.status.address = address.into();
    node
}

/// The next message of a watch, failing the test if none comes in time.
async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("watch event in time")
        .expect("watch stream healthy")
        .expect("watch stream open")
}

fn event(r: &pb::WatchWorkloadsResponse) -> (pb::WatchEventType, String) {
    let ty = pb::WatchEventType::try_from(r.r#type).expect("known type");
    let name = r.workload.as_ref().map(|w| meta(w).name.clone());
    (ty, name.unwrap_or_default())
}

#[tokio::test]
async fn create_get_and_duplicates() {
    let api = Api::start().await;
    let mut client = api.workloads();

    let created = client
        .create_workload(create(inference("", "chat")))
        .await
        .expect("create")
        .into_inner();
    let m = meta(&created);
    assert_eq!((m.namespace.as_str(), m.generation), ("default", 1));
    assert!(!m.uid.is_empty());
    assert!(m.resource_version > 0);
    assert!(m.creation_time.is_some());
    assert_eq!(phase(&created), pb::WorkloadPhase::Pending);
    assert_eq!(
        created.status.as_ref().map(|s| s.observed_generation),
        Some(0)
    );

    let got = client
        .get_workload(get("", "chat"))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(meta(&got).uid, m.uid);
    assert_eq!(meta(&got).resource_version, m.resource_version);
    assert_eq!(
        inference_spec(&got).replicas.map(|r| r.desired),
        Some(Some(1))
    );
    assert_eq!(got.status.as_ref().map(|s| s.replicas_desired), Some(1));

    let dup = client
        .create_workload(create(inference("default", "chat")))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code(), Code::AlreadyExists, "{dup:?}");

    let dry = client
        .create_workload(pb::CreateWorkloadRequest {
            workload: Some(inference("default", "dry")),
            dry_run: true,
        })
        .await
        .expect("dry run");
    assert_eq!(meta(dry.get_ref()).resource_version, 0);
    let missing = client
        .get_workload(get("default", "dry"))
        .await
        .expect_err("dry run stores nothing");
    assert_eq!(missing.code(), Code::NotFound);

    let bad = client
        .get_workload(get("a/b", "x"))
        .await
        .expect_err("bad namespace");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("namespace"), "{}", bad.message());
    api.stop().await;
}

#[tokio::test]
async fn invalid_spec_names_every_field_and_writes_nothing() {
    let api = Api::start().await;
    let mut client = api.workloads();
    let mut w = inference("team-a", "Bad_Name");
    if let Some(pb::workload::Spec::Inference(s)) = w.spec.as_mut() {
        s.priority = Some(5000);
        s.replicas = Some(pb::ReplicaCount {
            min: 5,
            max: 2,
            desired: None,
        });
        if let Some(r) = s.template.as_mut().and_then(|t| t.resources.as_mut()) {
            r.memory = "12Qi".into();
        }
    }
    let err = client
        .create_workload(create(w))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in [
        "meta.name",
        "spec.template.resources.memory",
        "spec.replicas.min",
        "spec.priority",
    ] {
        assert!(
            err.message().contains(field),
            "{field} missing: {}",
            err.message()
        );
    }
    let stored = api
        .store
        .range(&WorkloadKey::prefix(), RangeOptions::default())
        .await
        .expect("range");
    assert!(
        stored.kvs.is_empty(),
        "nothing reaches etcd: {:?}",
        stored.kvs
    );

    let err = client
        .create_workload(pb::CreateWorkloadRequest::default())
        .await
        .expect_err("no workload");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("workload"), "{}", err.message());
    api.stop().await;
}

#[tokio::test]
async fn list_pages_selects_and_spans_namespaces() {
    let api = Api::start().await;
    let mut client = api.workloads();
    for i in 0..5 {
        let app = if i % 2 == 0 { "chat" } else { "search" };
        let w = with_labels(inference("a", &format!("w{i}")), &[("app", app)]);
        client.create_workload(create(w)).await.expect("create");
    }
    client
        .create_workload(create(training("b", "train")))
        .await
        .expect("create");

    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_workloads(pb::ListWorkloadsRequest {
                namespace: "a".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.resource_version > 0);
        assert!(page.workloads.len() <= 2);
        names.extend(page.workloads.iter().map(|w| meta(w).name.clone()));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["w0", "w1", "w2", "w3", "w4"]);
    assert_eq!(pages, 3);

    let list = |req: pb::ListWorkloadsRequest| {
        let mut client = client.clone();
        async move {
            let resp = client.list_workloads(req).await?.into_inner();
            Ok::<_, tonic::Status>(
                resp.workloads
                    .iter()
                    .map(|w| meta(w).name.clone())
                    .collect::<Vec<_>>(),
            )
        }
    };
    let chat = list(pb::ListWorkloadsRequest {
        namespace: "a".into(),
        label_selector: "app=chat".into(),
        page_size: 2,
        ..Default::default()
    })
    .await
    .expect("selector");
    assert_eq!(chat, ["w0", "w2"]);
    let all = list(pb::ListWorkloadsRequest {
        all_namespaces: true,
        ..Default::default()
    })
    .await
    .expect("all namespaces");
    assert_eq!(all.len(), 6);
    let jobs = list(pb::ListWorkloadsRequest {
        all_namespaces: true,
        kind: pb::WorkloadKind::TrainingJob.into(),
        ..Default::default()
    })
    .await
    .expect("kind");
    assert_eq!(jobs, ["train"]);
    let empty = list(pb::ListWorkloadsRequest::default())
        .await
        .expect("default namespace");
    assert!(empty.is_empty());

    let err = list(pb::ListWorkloadsRequest {
        label_selector: "app in (".into(),
        ..Default::default()
    })
    .await
    .expect_err("bad selector");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("label_selector"),
        "{}",
        err.message()
    );
    let err = list(pb::ListWorkloadsRequest {
        namespace: "a".into(),
        page_token: "/somewhere/else".into(),
        ..Default::default()
    })
    .await
    .expect_err("bad token");
    assert!(err.message().contains("page_token"), "{}", err.message());
    api.stop().await;
}

#[tokio::test]
async fn update_is_optimistic_and_scale_validates() {
    let api = Api::start().await;
    let mut client = api.workloads();
    let created = client
        .create_workload(create(inference("default", "chat")))
        .await
        .expect("create")
        .into_inner();
    let v1 = meta(&created).resource_version;

    // Labels only: generation stays.
    let relabelled = client
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(with_labels(
                inference("default", "chat"),
                &[("tier", "gold")],
            )),
            expected_resource_version: v1,
            dry_run: false,
        })
        .await
        .expect("update")
        .into_inner();
    let v2 = meta(&relabelled).resource_version;
    assert!(v2 > v1);
    assert_eq!(meta(&relabelled).generation, 1);
    assert_eq!(meta(&relabelled).uid, meta(&created).uid);

    // A stale version is refused and changes nothing.
    let mut changed = inference("default", "chat");
    if let Some(pb::workload::Spec::Inference(s)) = changed.spec.as_mut() {
        s.port = 8080;
    }
    let err = client
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(changed.clone()),
            expected_resource_version: v1,
            dry_run: false,
        })
        .await
        .expect_err("stale");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let now = client
        .get_workload(get("default", "chat"))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(meta(&now).resource_version, v2);
    assert_eq!(inference_spec(&now).port, 0);
    assert_eq!(
        meta(&now).labels.get("tier").map(String::as_str),
        Some("gold")
    );

    // A spec change bumps the generation; status is the server's.
    let updated = client
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(changed),
            expected_resource_version: 0,
            dry_run: false,
        })
        .await
        .expect("unconditional update")
        .into_inner();
    assert_eq!(meta(&updated).generation, 2);
    assert_eq!(inference_spec(&updated).port, 8080);

    let err = client
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(training("default", "chat")),
            ..Default::default()
        })
        .await
        .expect_err("kind change");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("spec"), "{}", err.message());
    let err = client
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(inference("default", "ghost")),
            ..Default::default()
        })
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Code::NotFound);

    let scaled = client
        .scale_workload(pb::ScaleWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            desired: Some(3),
            max: Some(5),
            ..Default::default()
        })
        .await
        .expect("scale")
        .into_inner();
    let replicas = inference_spec(&scaled).replicas.expect("replicas");
    assert_eq!((replicas.desired, replicas.max), (Some(3), 5));
    assert_eq!(meta(&scaled).generation, 3);
    assert_eq!(scaled.status.as_ref().map(|s| s.replicas_desired), Some(3));

    let err = client
        .scale_workload(pb::ScaleWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            min: Some(9),
            ..Default::default()
        })
        .await
        .expect_err("min above max");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("spec.replicas.min"),
        "{}",
        err.message()
    );

    client
        .create_workload(create(training("default", "job")))
        .await
        .expect("create job");
    let err = client
        .scale_workload(pb::ScaleWorkloadRequest {
            namespace: "default".into(),
            name: "job".into(),
            desired: Some(2),
            ..Default::default()
        })
        .await
        .expect_err("desired on a job");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("desired"), "{}", err.message());
    api.stop().await;
}

#[tokio::test]
async fn delete_removes_the_key_and_overlays_replicas() {
    let api = Api::start().await;
    let mut client = api.workloads();
    client
        .create_workload(create(inference("default", "chat")))
        .await
        .expect("create");

    // The leader's allocation and the agent's status, as they would write them.
    let node = ready_node("n1", "10.0.0.7");
    let node_key = NodeKey::new("n1").expect("key").format();
    api.store
        .put(&node_key, codec::encode(&node).expect("encode"), 0)
        .await
        .expect("put node");
    let alloc = Allocation {
        id: "a1".into(),
        namespace: "default".into(),
        workload: "chat".into(),
        replica: 0,
        node: "n1".into(),
        compute_milli: 1000,
        memory_bytes: 1 << 30,
        port: 8000,
        generation: 1,
        ..Allocation::default()
    };
    let alloc_key = AllocationKey::new("n1", "a1").expect("key").format();
    api.store
        .put(&alloc_key, codec::encode(&alloc).expect("encode"), 0)
        .await
        .expect("put allocation");
    api.cache_synced().await;

    let got = client
        .get_workload(get("default", "chat"))
        .await
        .expect("get")
        .into_inner();
    let status = got.status.as_ref().expect("status");
    assert_eq!(status.replicas_placed, 1);
    assert_eq!(phase(&got), pb::WorkloadPhase::Scheduled);
    assert_eq!(status.replicas[0].address, "10.0.0.7");
    assert_eq!(status.replicas[0].port, 8000);
    assert!(status.cost_per_hour > 0.0);

    let err = client
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            expected_resource_version: 1,
            ..Default::default()
        })
        .await
        .expect_err("stale delete");
    assert_eq!(err.code(), Code::Aborted);
    let deleted = client
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    let last = deleted.workload.expect("last state");
    assert!(meta(&last).deletion_time.is_some());
    assert_eq!(phase(&last), pb::WorkloadPhase::Terminating);
    let err = client
        .get_workload(get("default", "chat"))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            ..Default::default()
        })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    api.stop().await;
}

#[tokio::test]
async fn watch_sends_changes_in_order_and_resumes() {
    use pb::WatchEventType::{Added, Deleted, Modified};
    let api = Api::start().await;
    let mut client = api.workloads();
    client
        .create_workload(create(inference("default", "a")))
        .await
        .expect("create a");

    let mut watch = client
        .watch_workloads(pb::WatchWorkloadsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = next(&mut watch).await;
    assert_eq!(event(&first), (Added, "a".into()));

    let b = client
        .create_workload(create(with_labels(
            inference("default", "b"),
            &[("app", "x")],
        )))
        .await
        .expect("create b")
        .into_inner();
    let added_b = next(&mut watch).await;
    assert_eq!(event(&added_b), (Added, "b".into()));
    assert_eq!(added_b.resource_version, meta(&b).resource_version);

    client
        .scale_workload(pb::ScaleWorkloadRequest {
            namespace: "default".into(),
            name: "b".into(),
            max: Some(4),
            ..Default::default()
        })
        .await
        .expect("scale b");
    client
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: "b".into(),
            ..Default::default()
        })
        .await
        .expect("delete b");
    let modified = next(&mut watch).await;
    assert_eq!(event(&modified), (Modified, "b".into()));
    let deleted = next(&mut watch).await;
    assert_eq!(event(&deleted), (Deleted, "b".into()));
    // The last state rides along with the deletion.
    let last = deleted.workload.as_ref().expect("last state");
    assert_eq!(meta(last).labels.get("app").map(String::as_str), Some("x"));
    assert!(deleted.resource_version > modified.resource_version);

    // Resuming after the ADDED of b replays what came after it, in order.
    let mut resumed = client
        .watch_workloads(pb::WatchWorkloadsRequest {
            resource_version: added_b.resource_version,
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(event(&next(&mut resumed).await), (Modified, "b".into()));
    assert_eq!(event(&next(&mut resumed).await), (Deleted, "b".into()));

    // A selector watch sees only matching workloads, and in another namespace nothing of these.
    let mut selected = client
        .watch_workloads(pb::WatchWorkloadsRequest {
            all_namespaces: true,
            label_selector: "app=x".into(),
            ..Default::default()
        })
        .await
        .expect("selector watch")
        .into_inner();
    client
        .create_workload(create(inference("other", "plain")))
        .await
        .expect("create plain");
    client
        .create_workload(create(with_labels(
            inference("other", "c"),
            &[("app", "x")],
        )))
        .await
        .expect("create c");
    assert_eq!(
        event(&next(&mut selected).await),
        (Added, "c".into()),
        "plain does not match"
    );

    // History that compaction removed is OUT_OF_RANGE.
    let revision = api.store.revision().await.expect("revision");
    api.store.compact(revision).await.expect("compact");
    let err = client
        .watch_workloads(pb::WatchWorkloadsRequest {
            resource_version: 1,
            ..Default::default()
        })
        .await
        .map(|_| ())
        .err();
    let err = match err {
        Some(e) => e,
        // The store may report compaction on the stream rather than at once.
        None => {
            let mut s = client
                .watch_workloads(pb::WatchWorkloadsRequest {
                    resource_version: 1,
                    ..Default::default()
                })
                .await
                .expect("watch")
                .into_inner();
            tokio::time::timeout(WAIT, s.message())
                .await
                .expect("in time")
                .expect_err("compacted")
        }
    };
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");

    // Open watches end when the server shuts down, so shutdown does not hang.
    drop(resumed);
    api.stop().await;
    let end = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("ends");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
}

#[tokio::test]
async fn cordon_and_drain_keep_the_agents_lease() {
    let api = Api::start().await;
    let mut nodes = api.nodes();

    // As an agent registers: the node bound to its lease.
    let lease = api
        .store
        .lease_grant(Duration::from_secs(60))
        .await
        .expect("lease");
    let mut node = ready_node("gpu-1.example", "10.0.0.1");
    node.meta.labels.insert("zone".into(), "a".into());
    let key = NodeKey::new("gpu-1.example").expect("key").format();
    api.store
        .put(&key, codec::encode(&node).expect("encode"), lease)
        .await
        .expect("put node");
    let alloc = Allocation {
        id: "a1".into(),
        namespace: "default".into(),
        workload: "w".into(),
        node: "gpu-1.example".into(),
        compute_milli: 500,
        ..Allocation::default()
    };
    api.store
        .put(
            &AllocationKey::new("gpu-1.example", "a1")
                .expect("key")
                .format(),
            codec::encode(&alloc).expect("encode"),
            0,
        )
        .await
        .expect("put allocation");
    api.cache_synced().await;

    let listed = nodes
        .list_nodes(pb::ListNodesRequest {
            label_selector: "zone=a".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.nodes.len(), 1);
    let none = nodes
        .list_nodes(pb::ListNodesRequest {
            label_selector: "zone=b".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(none.nodes.is_empty());

    let cordoned = nodes
        .cordon_node(pb::CordonNodeRequest {
            name: "gpu-1.example".into(),
        })
        .await
        .expect("cordon")
        .into_inner();
    assert_eq!(cordoned.spec.map(|s| s.cordoned), Some(true));
    let kv = api.store.get(&key).await.expect("get").expect("node kept");
    assert_eq!(kv.lease, lease, "the node stays bound to the agent's lease");
    let stored: Node = codec::decode(&kv.key, &kv.value).expect("decode");
    assert!(stored.spec.cordoned && stored.status.ready);
    assert_eq!(stored.status.address, "10.0.0.1");

    // Reads on this replica see the write at once.
    let got = nodes
        .get_node(pb::GetNodeRequest {
            name: "gpu-1.example".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.spec.map(|s| s.cordoned), Some(true));
    assert_eq!(got.status.map(|s| s.replicas), Some(1));

    let drained = nodes
        .drain_node(pb::DrainNodeRequest {
            name: "gpu-1.example".into(),
            ..Default::default()
        })
        .await
        .expect("drain")
        .into_inner();
    assert_eq!(drained.evicted_replicas, 1);
    assert_eq!(
        drained.node.and_then(|n| n.status).map(|s| s.draining),
        Some(true)
    );

    let uncordoned = nodes
        .uncordon_node(pb::UncordonNodeRequest {
            name: "gpu-1.example".into(),
        })
        .await
        .expect("uncordon")
        .into_inner();
    assert_eq!(uncordoned.spec.map(|s| s.cordoned), Some(false));
    assert_eq!(uncordoned.status.map(|s| s.draining), Some(false));
    let kv = api.store.get(&key).await.expect("get").expect("node kept");
    assert_eq!(kv.lease, lease);

    let summary = api
        .cluster()
        .get_cluster_summary(pb::GetClusterSummaryRequest {})
        .await
        .expect("summary")
        .into_inner();
    let counts = summary.nodes.expect("node counts");
    assert_eq!((counts.total, counts.ready, counts.cordoned), (1, 1, 0));

    let err = nodes
        .get_node(pb::GetNodeRequest {
            name: "nope".into(),
        })
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Code::NotFound);
    let err = nodes
        .cordon_node(pb::CordonNodeRequest::default())
        .await
        .expect_err("no name");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("name"), "{}", err.message());

    // Revoking the lease (the agent died) removes the node, and the watch says so.
    let mut watch = nodes
        .watch_nodes(pb::WatchNodesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let added = next(&mut watch).await;
    assert_eq!(added.r#type, pb::WatchEventType::Added as i32);
    api.store.lease_revoke(lease).await.expect("revoke");
    let gone = next(&mut watch).await;
    assert_eq!(gone.r#type, pb::WatchEventType::Deleted as i32);
    assert_eq!(
        gone.node.and_then(|n| n.meta).map(|m| m.name),
        Some("gpu-1.example".to_string())
    );
    api.stop().await;
}

#[tokio::test]
async fn queues_crud_and_delete_in_use() {
    let api = Api::start().await;
    let mut queues = api.queues();
    let queue = |name: &str, guaranteed: &str, max: &str| pb::Queue {
        meta: Some(pb::ObjectMeta {
            name: name.into(),
            ..Default::default()
        }),
        spec: Some(pb::QueueSpec {
            guaranteed: Some(pb::Quota {
                compute: guaranteed.into(),
                ..Default::default()
            }),
            max: Some(pb::Quota {
                compute: max.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };

    let err = queues
        .create_queue(pb::CreateQueueRequest {
            queue: Some(queue("team-a", "10", "5")),
            dry_run: false,
        })
        .await
        .expect_err("guaranteed above max");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("spec.guaranteed.compute"),
        "{}",
        err.message()
    );

    let created = queues
        .create_queue(pb::CreateQueueRequest {
            queue: Some(queue("team-a", "4", "8")),
            dry_run: false,
        })
        .await
        .expect("create")
        .into_inner();
    let v1 = created.meta.as_ref().map_or(0, |m| m.resource_version);
    let listed = queues
        .list_queues(pb::ListQueuesRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = listed
        .queues
        .iter()
        .filter_map(|q| q.meta.as_ref().map(|m| m.name.as_str()))
        .collect();
    assert_eq!(
        names,
        ["default", "team-a"],
        "the default queue always exists"
    );

    let updated = queues
        .update_queue(pb::UpdateQueueRequest {
            queue: Some(queue("team-a", "4", "16")),
            expected_resource_version: v1,
            dry_run: false,
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.meta.as_ref().map(|m| m.generation), Some(2));
    let err = queues
        .update_queue(pb::UpdateQueueRequest {
            queue: Some(queue("team-a", "4", "32")),
            expected_resource_version: v1,
            dry_run: false,
        })
        .await
        .expect_err("stale");
    assert_eq!(err.code(), Code::Aborted);
    let got = queues
        .get_queue(pb::GetQueueRequest {
            name: "team-a".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let max = got.spec.and_then(|s| s.max).map(|m| m.compute);
    assert_eq!(max.as_deref(), Some("16"));

    // In use by a workload: refused until the workload is gone.
    let mut w = inference("default", "chat");
    if let Some(pb::workload::Spec::Inference(s)) = w.spec.as_mut() {
        s.queue = "team-a".into();
    }
    let mut workloads = api.workloads();
    workloads.create_workload(create(w)).await.expect("create");
    let delete = pb::DeleteQueueRequest {
        name: "team-a".into(),
        expected_resource_version: 0,
    };
    let err = queues
        .delete_queue(delete.clone())
        .await
        .expect_err("in use");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    workloads
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: "chat".into(),
            ..Default::default()
        })
        .await
        .expect("delete workload");
    queues.delete_queue(delete).await.expect("delete queue");
    let err = queues
        .delete_queue(pb::DeleteQueueRequest {
            name: "default".into(),
            expected_resource_version: 0,
        })
        .await
        .expect_err("default stays");
    assert_eq!(err.code(), Code::FailedPrecondition);
    api.stop().await;
}

#[tokio::test]
async fn events_list_and_watch_by_object() {
    let api = Api::start().await;
    let put = |ns: &str, id: &str, name: &str, ty: EventType, at: i64| {
        let e = Event {
            meta: ObjectMeta::namespaced(ns, id),
            involved: ObjectRef {
                kind: "InferenceService".into(),
                namespace: ns.into(),
                name: name.into(),
                uid: String::new(),
            },
            event_type: ty,
            reason: "Scheduled".into(),
            message: format!("{name} placed"),
            first_seen: uni_core::model::UnixMillis(at),
            last_seen: uni_core::model::UnixMillis(at),
            count: 1,
            ..Event::default()
        };
        let key = EventKey::new(ns, id).expect("key").format();
        let store = api.store.clone();
        async move {
            store
                .put(&key, codec::encode(&e).expect("encode"), 0)
                .await
                .expect("put event")
        }
    };
    put("default", "e2", "chat", EventType::Normal, 2000).await;
    put("default", "e1", "chat", EventType::Warning, 1000).await;
    put("default", "e3", "other", EventType::Normal, 3000).await;
    put("team", "e4", "chat", EventType::Normal, 4000).await;

    let mut events = api.events();
    let list = |filter: pb::EventFilter| {
        let mut events = events.clone();
        async move {
            events
                .list_events(pb::ListEventsRequest {
                    filter: Some(filter),
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .events
                .into_iter()
                .filter_map(|e| e.meta.map(|m| m.name))
                .collect::<Vec<_>>()
        }
    };
    let chat = list(pb::EventFilter {
        involved_name: "chat".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(chat, ["e1", "e2"], "oldest first");
    let warnings = list(pb::EventFilter {
        all_namespaces: true,
        r#type: pb::EventType::Warning.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(warnings, ["e1"]);
    assert_eq!(
        list(pb::EventFilter {
            all_namespaces: true,
            ..Default::default()
        })
        .await
        .len(),
        4
    );
    let err = events
        .list_events(pb::ListEventsRequest {
            filter: Some(pb::EventFilter {
                r#type: 42,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("bad type");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("filter.type"), "{}", err.message());

    let revision = api.store.revision().await.expect("revision");
    let mut watch = events
        .watch_events(pb::WatchEventsRequest {
            filter: Some(pb::EventFilter {
                namespace: "team".into(),
                ..Default::default()
            }),
            resource_version: revision,
            allow_bookmarks: false,
        })
        .await
        .expect("watch")
        .into_inner();
    put("default", "e5", "chat", EventType::Normal, 5000).await;
    put("team", "e6", "chat", EventType::Normal, 6000).await;
    let got = next(&mut watch).await;
    assert_eq!(got.r#type, pb::WatchEventType::Added as i32);
    assert_eq!(
        got.event.and_then(|e| e.meta).map(|m| m.name),
        Some("e6".to_string())
    );
    api.stop().await;
}

#[tokio::test]
async fn health_reflection_version_and_no_logs() {
    let api = Api::start().await;
    let mut health = HealthClient::new(api.channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "universal.v1.WorkloadService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut reflection = ServerReflectionClient::new(api.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = next(&mut responses).await;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "universal.v1.WorkloadService",
        "universal.v1.NodeService",
        "universal.v1.QueueService",
        "universal.v1.ClusterService",
        "universal.v1.EventService",
        "universal.v1.LogService",
    ] {
        assert!(names.contains(&service), "{service} not in {names:?}");
    }

    let version = api
        .cluster()
        .get_version(pb::GetVersionRequest {})
        .await
        .expect("version")
        .into_inner();
    assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(version.api_version, "universal.v1");

    // Logs are forwarded to agents; a request must name a workload that exists.
    let err = LogServiceClient::new(api.channel.clone())
        .stream_logs(pb::StreamLogsRequest::default())
        .await
        .expect_err("no workload named");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = LogServiceClient::new(api.channel.clone())
        .stream_logs(pb::StreamLogsRequest {
            workload: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown workload");
    assert_eq!(err.code(), Code::NotFound);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_specs_are_refused_by_field_and_write_nothing() {
    let api = Api::start().await;
    let mut client = api.workloads();
    let (mut created, mut refused) = (0, 0);
    for (i, mut w) in uni_core::testing::hostile::workloads(100)
        .into_iter()
        .enumerate()
    {
        if matches!(w.meta.name.as_str(), "chat" | "pretrain") {
            w.meta.name = format!("case-{i}");
        }
        match client.create_workload(create(pb::Workload::from(&w))).await {
            Ok(_) => created += 1,
            Err(e) => {
                refused += 1;
                assert_eq!(e.code(), Code::InvalidArgument, "{e}");
                assert!(
                    e.message().contains("meta.") || e.message().contains("spec."),
                    "the refusal names no field: {}",
                    e.message()
                );
            }
        }
    }
    let stored = api
        .store
        .range(&WorkloadKey::prefix(), RangeOptions::default())
        .await
        .expect("range")
        .kvs
        .len();
    println!("{created} created, {refused} refused");
    assert_eq!(stored, created, "a refused request wrote something");
    assert!(
        created > 0,
        "no sample was valid: the samples test nothing accepted"
    );
    api.stop().await;
}
