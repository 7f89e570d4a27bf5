//! The control plane end to end: real etcd, real `uni-scheduler` processes, nodes registered
//! under leases as agents do, workloads submitted through the gRPC API.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use harness::*;
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, Workload};
use uni_core::store::keys::{NodeKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore, LeaseKeeper, RangeOptions};
use uni_core::testing::EtcdServer;
use uni_proto::v1 as pb;

/// Waits until the stored workload `name` carries the Unschedulable reason.
async fn wait_unschedulable(store: &Arc<dyn KvStore>, name: &str) -> Workload {
    let key = format!("/universal/v1/workloads/default/{name}");
    let kvs = wait_for(store, &key, "unschedulable", |kvs| {
        kvs.iter().any(|kv| {
            codec::decode::<Workload>(&kv.key, &kv.value)
                .is_ok_and(|w| w.status.reason == "Unschedulable")
        })
    })
    .await;
    codec::decode(&kvs[0].key, &kvs[0].value).expect("workload")
}

fn of<'a>(allocs: &'a [Allocation], workload: &str) -> Vec<&'a Allocation> {
    allocs.iter().filter(|a| a.workload == workload).collect()
}

async fn setup() -> (EtcdServer, Arc<dyn KvStore>) {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    (etcd, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_spreads_and_a_gang_is_placed_whole_or_not_at_all() {
    let (etcd, store) = setup().await;
    let mut nodes: Vec<_> = (0..3)
        .map(|i| node(&format!("gpu-{i}"), 16, 64, 2, "NVIDIA A100-SXM4-80GB", 80))
        .collect();
    for n in &nodes {
        register(&store, n, 0).await;
    }
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;

    create(&s, &inference("web", 3, "1")).await;
    let allocs = wait_allocations(&store, "3 web replicas", |a| of(a, "web").len() == 3).await;
    let web_nodes: BTreeSet<_> = of(&allocs, "web").iter().map(|a| a.node.clone()).collect();
    assert_eq!(
        web_nodes.len(),
        3,
        "replicas must spread over nodes: {allocs:?}"
    );

    // 8 workers of one GPU each need 8 GPUs; the cluster has 6.
    create(&s, &training("big", 8, 1)).await;
    let w = wait_unschedulable(&store, "big").await;
    assert!(
        w.status.message.starts_with("0/3 nodes"),
        "reason should count nodes: {}",
        w.status.message
    );
    assert!(
        of(&allocations(&store).await, "big").is_empty(),
        "a gang that cannot fit holds nothing"
    );
    let api_view = get_workload(&s, "big").await;
    assert_eq!(
        api_view.status.as_ref().map(|s| s.reason.as_str()),
        Some("Unschedulable")
    );
    // Its event expires: it is written with a lease, of at least the event TTL.
    let events = wait_for(
        &store,
        "/universal/v1/events/default/big.",
        "an event",
        |kvs| !kvs.is_empty(),
    )
    .await;
    for kv in &events {
        assert_ne!(
            kv.lease, 0,
            "event {} has no lease and would never go",
            kv.key
        );
        let ttl = store.lease_keep_alive(kv.lease).await.expect("lease alive");
        assert!(ttl.as_secs() >= 3600, "event lease TTL {ttl:?}");
    }

    // Capacity appears: the whole gang is placed at once.
    let extra = node("gpu-3", 16, 64, 2, "NVIDIA A100-SXM4-80GB", 80);
    register(&store, &extra, 0).await;
    nodes.push(extra);
    let allocs = wait_allocations(&store, "8 workers", |a| of(a, "big").len() == 8).await;
    let ranks: BTreeSet<String> = of(&allocs, "big")
        .iter()
        .flat_map(|a| {
            a.env
                .iter()
                .filter(|e| e.name == "RANK")
                .map(|e| e.value.clone())
        })
        .collect();
    assert_eq!(ranks.len(), 8, "every worker has its own rank");
    assert!(of(&allocs, "big").iter().all(|a| a
        .env
        .iter()
        .any(|e| e.name == "WORLD_SIZE" && e.value == "8")));
    assert_no_overcommit(&nodes, &allocs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_node_is_marked_not_ready_and_its_replicas_move() {
    let (etcd, store) = setup().await;
    let a = node("node-a", 8, 32, 0, "", 0);
    let b = node("node-b", 8, 32, 0, "", 0);
    let keeper_a = LeaseKeeper::grant(store.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    let keeper_b = LeaseKeeper::grant(store.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    register(&store, &a, keeper_a.id()).await;
    register(&store, &b, keeper_b.id()).await;
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;

    create(&s, &inference("api", 2, "2")).await;
    let allocs = wait_allocations(&store, "2 replicas", |a| of(a, "api").len() == 2).await;
    let placed: BTreeSet<_> = allocs.iter().map(|a| a.node.clone()).collect();
    assert_eq!(placed.len(), 2, "spread over both nodes");

    // node-a's agent dies: its lease stops being renewed.
    drop(keeper_a);
    let key = NodeKey::new("node-a").unwrap().format();
    wait_for(&store, &key, "node-a NotReady", |kvs| {
        kvs.iter().any(|kv| {
            codec::decode::<uni_core::model::Node>(&kv.key, &kv.value)
                .is_ok_and(|n| !n.status.ready && kv.lease == 0)
        })
    })
    .await;
    let allocs = wait_allocations(&store, "replicas moved to node-b", |a| {
        let api = of(a, "api");
        api.len() == 2 && api.iter().all(|x| x.node == "node-b")
    })
    .await;
    let replicas: BTreeSet<u32> = allocs.iter().map(|a| a.replica).collect();
    assert_eq!(replicas, BTreeSet::from([0, 1]));
    drop(keeper_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_node_receives_nothing() {
    let (etcd, store) = setup().await;
    let mut cordoned = node("node-c", 64, 256, 0, "", 0);
    cordoned.spec.cordoned = true;
    register(&store, &cordoned, 0).await;
    register(&store, &node("node-d", 4, 16, 0, "", 0), 0).await;
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;
    // Four replicas of 1 CPU fit only on node-d.
    create(&s, &inference("svc", 4, "1")).await;
    let allocs = wait_allocations(&store, "4 replicas", |a| of(a, "svc").len() == 4).await;
    assert!(allocs.iter().all(|a| a.node == "node-d"), "{allocs:?}");
    // A fifth does not fit anywhere; the reason names the cordon.
    create(&s, &inference("more", 1, "1")).await;
    let w = wait_unschedulable(&store, "more").await;
    assert!(
        w.status.message.contains("cordoned"),
        "{}",
        w.status.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_loses_nothing_and_double_books_nothing() {
    let (etcd, store) = setup().await;
    let nodes: Vec<_> = (0..10)
        .map(|i| node(&format!("n{i}"), 32, 128, 4, "NVIDIA A100-SXM4-80GB", 80))
        .collect();
    for n in &nodes {
        register(&store, n, 0).await;
    }
    let mut first = Scheduler::start(&etcd.endpoint(), "first").await;
    // The first replica to start wins the election; the second is a warm follower.
    wait_leader(&store, None).await;
    let second = Scheduler::start(&etcd.endpoint(), "second").await;

    const N: usize = 60;
    let mut expected = BTreeMap::new();
    for i in 0..N {
        // Half ask for part of a GPU, half for CPU only.
        let name = format!("w{i}");
        let w = if i % 2 == 0 {
            fractional(&name, 1)
        } else {
            inference(&name, 1, "2")
        };
        // Submit through either replica: followers serve writes too.
        let via = if i % 2 == 0 && i < N / 3 {
            &first
        } else {
            &second
        };
        create(via, &w).await;
        expected.insert(name, 1usize);
        if i == N / 3 {
            wait_allocations(&store, "some placements", |a| !a.is_empty()).await;
            first.kill().await;
        }
    }
    let allocs = wait_allocations(&store, "every workload placed", |a| {
        expected
            .keys()
            .all(|name| a.iter().filter(|x| &x.workload == name).count() == 1)
    })
    .await;
    assert_eq!(allocs.len(), N, "no workload placed twice: {allocs:?}");
    assert_no_overcommit(&nodes, &allocs);
    let leader = store.get(LEADER_KEY).await.unwrap().unwrap();
    assert_eq!(leader.value, b"second");
    assert!(second
        .metrics_text()
        .await
        .contains("universal_scheduler_is_leader 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_resigns_leadership_at_once() {
    let (etcd, store) = setup().await;
    let mut s = Scheduler::start(&etcd.endpoint(), "only").await;
    wait_leader(&store, None).await;
    let status = s.terminate().await;
    assert!(status.success(), "exit status {status}");
    // Resigning deletes the key at once rather than leaving it to the lease's expiry.
    assert!(store.get(LEADER_KEY).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_never_exceeds_its_maximum_quota() {
    let (etcd, store) = setup().await;
    register(&store, &node("big", 64, 256, 0, "", 0), 0).await;
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;
    let queue: uni_core::model::Queue = serde_yaml::from_str(
        "meta: {name: small}\nspec: {max: {compute: \"2\"}, priority: 100, weight: 1}\n",
    )
    .unwrap();
    pb::queue_service_client::QueueServiceClient::connect(s.api.clone())
        .await
        .unwrap()
        .create_queue(pb::CreateQueueRequest {
            queue: Some(pb::Queue::from(&queue)),
            dry_run: false,
        })
        .await
        .expect("create queue");
    let mut w = inference("capped", 3, "1");
    if let uni_core::model::WorkloadSpec::Inference(spec) = &mut w.spec {
        spec.queue = "small".into();
    }
    create(&s, &w).await;
    let w = wait_unschedulable(&store, "capped").await;
    assert_eq!(
        w.status.message,
        "queue small: 1 compute over its maximum quota"
    );
    // Two replicas fit in the queue's 2 UCU; the node had room for all three.
    assert_eq!(of(&allocations(&store).await, "capped").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_of_a_workload_recreated_unseen_are_replaced() {
    let (etcd, store) = setup().await;
    register(&store, &node("node-a", 8, 32, 0, "", 0), 0).await;
    let mut s = Scheduler::start(&etcd.endpoint(), "s1").await;
    create(&s, &inference("svc", 1, "1")).await;
    let uid = get_workload(&s, "svc").await.meta.expect("meta").uid;
    let old = wait_allocations(&store, "placed", |a| of(a, "svc").len() == 1).await;
    assert_eq!(old[0].workload_uid, uid);
    s.kill().await;

    // Deleted and created again while no scheduler watched: only the new object is seen.
    let key = WorkloadKey::new("default", "svc").unwrap().format();
    let kv = store.get(&key).await.unwrap().expect("stored");
    let mut w: Workload = codec::decode(&key, &kv.value).unwrap();
    w.meta.uid = "the-new-one".into();
    w.meta.generation = 1;
    w.status = Default::default();
    store
        .put(&key, codec::encode(&w).unwrap(), 0)
        .await
        .unwrap();

    let _s = Scheduler::start(&etcd.endpoint(), "s2").await;
    let allocs = wait_allocations(&store, "replaced for the new workload", |a| {
        let svc = of(a, "svc");
        svc.len() == 1 && svc[0].workload_uid == "the-new-one"
    })
    .await;
    assert_ne!(allocs[0].id, old[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_deleted_after_their_time_to_live() {
    let (etcd, store) = setup().await;
    register(&store, &node("node-a", 8, 32, 0, "", 0), 0).await;
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;
    let job = |name: &str, ttl: &str| {
        workload(&format!(
            r#"
meta: {{name: {name}, namespace: default}}
spec:
  training:
    template:
      command: ["true"]
      resources: {{compute: "1", memory: 1Gi}}
    workers: {{min: 1, max: 1}}{ttl}
"#
        ))
    };
    create(&s, &job("short", "\n    ttl_seconds_after_finished: 1")).await;
    create(&s, &job("kept", "")).await;
    let allocs = wait_allocations(&store, "both placed", |a| a.len() == 2).await;
    // Each worker reports success, as its agent would.
    for a in &allocs {
        let key = StatusKey::new("default", a.workload.as_str(), 0u32)
            .unwrap()
            .format();
        let status = ReplicaStatus {
            allocation_id: a.id.clone(),
            node: a.node.clone(),
            phase: ReplicaPhase::Succeeded,
            exit_code: Some(0),
            ..ReplicaStatus::default()
        };
        store
            .put(&key, codec::encode(&status).unwrap(), 0)
            .await
            .unwrap();
    }
    // "short" goes, with its status; "kept" stays Succeeded (the default keeps it 7 days).
    wait_for(
        &store,
        "/universal/v1/",
        "short deleted with its status",
        |kvs| {
            let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
            !keys
                .iter()
                .any(|k| k.ends_with("/default/short") || k.contains("/default/short/"))
                && keys.iter().any(|k| k.ends_with("workloads/default/kept"))
        },
    )
    .await;
    let kept = get_workload(&s, "kept").await;
    assert_eq!(
        kept.status.map(|s| s.phase),
        Some(pb::WorkloadPhase::Succeeded as i32)
    );
    let events = store
        .range("/universal/v1/events/", RangeOptions::default())
        .await
        .unwrap();
    assert!(
        events
            .kvs
            .iter()
            .any(|kv| String::from_utf8_lossy(&kv.value).contains("time-to-live of 1s")),
        "no Expired event"
    );
}
