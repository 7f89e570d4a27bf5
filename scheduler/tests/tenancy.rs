//! Queues that share, end to end: real etcd, a real `uni-scheduler` process, and (where a
//! replica must really stop) a real `uni-agent` running real processes.
//!
//! Needs the `uni-agent` binary beside `uni-scheduler` (`cargo test --workspace` builds both).

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::agent::AgentProcess;
use harness::*;
use uni_core::model::{
    Allocation, Node, Queue, ReplicaPhase, ReplicaStatus, UnixMillis, Workload, WorkloadPhase,
};
use uni_core::store::keys::{NodeKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore};
use uni_core::testing::EtcdServer;
use uni_proto::v1 as pb;

async fn create_queue(s: &Scheduler, yaml: &str) {
    let q: Queue = serde_yaml::from_str(yaml).expect("queue yaml");
    pb::queue_service_client::QueueServiceClient::connect(s.api.clone())
        .await
        .expect("connect")
        .create_queue(pb::CreateQueueRequest {
            queue: Some(pb::Queue::from(&q)),
            dry_run: false,
        })
        .await
        .expect("create queue");
}

/// Waits until workload `name` is stored in `phase`.
async fn wait_phase(store: &Arc<dyn KvStore>, name: &str, phase: WorkloadPhase) -> Workload {
    let key = WorkloadKey::new("default", name).expect("key").format();
    let kvs = wait_for(store, &key, &format!("{name} {phase:?}"), |kvs| {
        kvs.iter().any(|kv| {
            codec::decode::<Workload>(&kv.key, &kv.value).is_ok_and(|w| w.status.phase == phase)
        })
    })
    .await;
    codec::decode(&kvs[0].key, &kvs[0].value).expect("workload")
}

/// A one-worker training job of `compute` milli-UCU in `queue`, running `script` under sh.
fn job(
    name: &str,
    queue: &str,
    compute: u64,
    priority: i32,
    preemptible: bool,
    script: &str,
) -> Workload {
    workload(&format!(
        r#"
meta: {{name: {name}, namespace: default}}
spec:
  training:
    template:
      command: ["sh", "-c", {script:?}]
      resources: {{compute: "{compute}m", memory: 64Mi}}
    workers: {{min: 1, max: 1}}
    queue: {queue}
    priority: {priority}
    preemptible: {preemptible}
    grace_period_seconds: 5
"#
    ))
}

/// Runs until SIGTERM, then records in `out` the notice it was given and exits.
fn checkpoints(out: &Path) -> String {
    format!(
        "trap 'cat \"$UNIVERSAL_PREEMPTION_NOTICE_FILE\" > {out}/$UNIVERSAL_WORKLOAD.notice; \
         echo term > {out}/$UNIVERSAL_WORKLOAD.term; exit 0' TERM; while true; do sleep 0.2; done",
        out = out.display()
    )
}

fn allocation_of<'a>(allocs: &'a [Allocation], workload: &str) -> Option<&'a Allocation> {
    allocs.iter().find(|a| a.workload == workload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarantee_is_reclaimed_from_a_borrower_with_notice() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let data = tempfile::tempdir().expect("data dir");
    let name = format!("tenancy-{}", std::process::id());
    let _agent = AgentProcess::start(&etcd.endpoint(), data.path(), &name, "tenancy=real");
    let key = NodeKey::new(&name).expect("node key").format();
    let kvs = wait_for(&store, &key, "the agent's node", |kvs| !kvs.is_empty()).await;
    let node: Node = codec::decode(&kvs[0].key, &kvs[0].value).expect("node");
    // Half the node each, in hundreds of milli-UCU.
    let half = node.status.allocatable.compute_milli / 200 * 100;
    assert!(
        half >= 100,
        "the node is too small: {:?}",
        node.status.allocatable
    );

    // Where the replicas (which may run as another user) leave what they saw.
    let out = tempfile::tempdir().expect("out dir");
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;
    for q in ["research", "prod"] {
        create_queue(
            &s,
            &format!("meta: {{name: {q}}}\nspec: {{guaranteed: {{compute: \"{half}m\"}}}}\n"),
        )
        .await;
    }
    // research takes the whole node: its guarantee, and prod's idle one on loan.
    create(
        &s,
        &job("r1", "research", half, 500, false, &checkpoints(out.path())),
    )
    .await;
    create(
        &s,
        &job("r2", "research", half, 500, false, &checkpoints(out.path())),
    )
    .await;
    let running = |kvs: &[uni_core::store::KeyValue], n: usize| {
        kvs.iter()
            .filter_map(|kv| codec::decode::<ReplicaStatus>(&kv.key, &kv.value).ok())
            .filter(|st| st.phase == ReplicaPhase::Running)
            .count()
            >= n
    };
    wait_for(
        &store,
        "/universal/v1/status/default/",
        "research running",
        |kvs| running(kvs, 2),
    )
    .await;
    let before = allocations(&store).await;

    let asked = Instant::now();
    create(&s, &job("p1", "prod", half, 500, false, "sleep 3600")).await;
    let allocs =
        wait_allocations(&store, "prod placed", |a| allocation_of(a, "p1").is_some()).await;
    let waited = asked.elapsed();
    // Within the victim's grace period (5 s) and 5 s more.
    assert!(waited < Duration::from_secs(10), "placed after {waited:?}");

    // Exactly one of research's jobs was stopped, with notice, and the other runs on.
    let gone: Vec<&Allocation> = before
        .iter()
        .filter(|b| !allocs.iter().any(|a| a.id == b.id))
        .collect();
    assert_eq!(gone.len(), 1, "one research job stops: {gone:?}");
    let victim = gone[0].workload.clone();
    let seen = std::fs::read_to_string(out.path().join(format!("{victim}.notice")))
        .expect("the victim saw its notice file when SIGTERM came");
    let notice: serde_json::Value = serde_json::from_str(&seen).expect("notice is JSON");
    assert_eq!(notice["reason"], "Reclaimed", "{notice}");
    assert_eq!(notice["by"], "default/p1", "{notice}");
    assert!(notice["deadline"].as_i64().unwrap_or(0) > UnixMillis::now().0 - 60_000);
    assert!(
        out.path().join(format!("{victim}.term")).exists(),
        "the victim got SIGTERM"
    );

    // The victim waits, Preempted, to be placed again; nothing was lost or duplicated.
    let w = wait_phase(&store, &victim, WorkloadPhase::Preempted).await;
    assert_eq!(w.status.restarts, 0, "a preemption is not a restart");
    let other = if victim == "r1" { "r2" } else { "r1" };
    assert!(
        allocation_of(&allocs, other).is_some(),
        "{other} keeps running"
    );
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("universal_scheduler_preemptions_total{reason=\"Reclaimed\"} 1"),
        "{metrics}"
    );
}

/// Acts as the agents of registered nodes: every allocation with a stop notice is reported
/// stopped, as its agent would once the replica ended.
async fn stop_noticed(store: &Arc<dyn KvStore>) -> usize {
    let mut n = 0;
    for a in allocations(store)
        .await
        .into_iter()
        .filter(|a| a.notice.is_some())
    {
        let key = StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)
            .expect("status key")
            .format();
        let status = ReplicaStatus {
            allocation_id: a.id.clone(),
            node: a.node.clone(),
            phase: ReplicaPhase::Preempted,
            ..ReplicaStatus::default()
        };
        store
            .put(&key, codec::encode(&status).expect("encode"), 0)
            .await
            .expect("put status");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_preempts_only_preemptible_work_and_never_loops() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    register(&store, &node("n1", 4, 64, 0, "", 0), 0).await;
    let s = Scheduler::start(&etcd.endpoint(), "s1").await;
    create(&s, &job("low", "default", 2000, 100, true, "true")).await;
    create(&s, &job("steady", "default", 2000, 100, false, "true")).await;
    wait_allocations(&store, "both placed", |a| a.len() == 2).await;
    let steady = allocation_of(&allocations(&store).await, "steady")
        .expect("steady placed")
        .clone();

    for round in 1..=3 {
        create(&s, &job("high", "default", 2000, 900, false, "true")).await;
        wait_allocations(&store, "low told to stop", |a| {
            a.iter().any(|a| a.workload == "low" && a.notice.is_some())
        })
        .await;
        assert_eq!(stop_noticed(&store).await, 1, "round {round}: one victim");
        let allocs = wait_allocations(&store, "high placed", |a| {
            allocation_of(a, "high").is_some() && allocation_of(a, "low").is_none()
        })
        .await;
        // The non-preemptible job is never touched.
        assert_eq!(allocation_of(&allocs, "steady"), Some(&steady));
        wait_phase(&store, "low", WorkloadPhase::Preempted).await;
        // high goes; low comes back, and nothing preempts anything in between.
        s.client()
            .await
            .delete_workload(pb::DeleteWorkloadRequest {
                namespace: "default".into(),
                name: "high".into(),
                ..Default::default()
            })
            .await
            .expect("delete high");
        let allocs = wait_allocations(&store, "low placed again", |a| {
            allocation_of(a, "low").is_some() && allocation_of(a, "high").is_none()
        })
        .await;
        assert!(
            allocs.iter().all(|a| a.notice.is_none()),
            "round {round}: {allocs:?}"
        );
        assert_eq!(allocation_of(&allocs, "steady"), Some(&steady));
    }
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("universal_scheduler_preemptions_total{reason=\"Preempted\"} 3"),
        "{metrics}"
    );
}
