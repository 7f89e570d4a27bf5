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
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey, WorkloadKey};
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
    let noticed: Vec<Allocation> = allocations(store)
        .await
        .into_iter()
        .filter(|a| a.notice.is_some())
        .collect();
    report(
        store,
        &noticed.iter().collect::<Vec<_>>(),
        ReplicaPhase::Preempted,
    )
    .await;
    noticed.len()
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

/// A training job of `workers` (elastic down to `min`) of `gpus` L4s each.
fn gpu_job(
    name: &str,
    min: u32,
    workers: u32,
    gpus: u32,
    priority: i32,
    preemptible: bool,
) -> Workload {
    gang(name, min, workers, gpus, 20, priority, preemptible)
}

fn of<'a>(allocs: &'a [Allocation], workload: &str) -> Vec<&'a Allocation> {
    allocs.iter().filter(|a| a.workload == workload).collect()
}

fn world_size(a: &Allocation) -> Option<usize> {
    a.env
        .iter()
        .find(|e| e.name == "WORLD_SIZE")
        .and_then(|e| e.value.parse().ok())
}

/// A gang runs whole or not at all: its workers not told to stop are all there, with the
/// same `WORLD_SIZE`, or none are.
fn assert_whole(allocs: &[Allocation], workload: &str) {
    let gang: Vec<&Allocation> = of(allocs, workload)
        .into_iter()
        .filter(|a| a.notice.is_none())
        .collect();
    if let Some(first) = gang.first() {
        let world = world_size(first);
        assert_eq!(
            world,
            Some(gang.len()),
            "{workload} partly placed: {gang:?}"
        );
        assert!(gang.iter().all(|a| world_size(a) == world), "{gang:?}");
    }
}

/// Acts as the agents: reports every allocation of `workload` running (or `phase`).
async fn report(store: &Arc<dyn KvStore>, allocs: &[&Allocation], phase: ReplicaPhase) {
    for a in allocs {
        let key = StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)
            .expect("status key")
            .format();
        let status = ReplicaStatus {
            allocation_id: a.id.clone(),
            node: a.node.clone(),
            phase,
            ..ReplicaStatus::default()
        };
        store
            .put(&key, codec::encode(&status).expect("encode"), 0)
            .await
            .expect("put status");
    }
}

async fn delete(s: &Scheduler, name: &str) {
    s.client()
        .await
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: "default".into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elastic_gang_shrinks_to_make_room_and_grows_back() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    register(&store, &node("n1", 16, 64, 4, "L4", 24), 0).await;
    let s = Scheduler::start_with(&etcd.endpoint(), "s1", &["--elastic-window-seconds", "1"]).await;
    create(&s, &gpu_job("wide", 1, 4, 1, 500, true)).await;
    let allocs = wait_allocations(&store, "wide at 4 workers", |a| {
        assert_whole(a, "wide");
        of(a, "wide").len() == 4
    })
    .await;
    report(&store, &of(&allocs, "wide"), ReplicaPhase::Running).await;

    // Two GPUs for higher-priority work: wide shrinks to 2 rather than stopping.
    create(&s, &gpu_job("urgent", 1, 1, 2, 900, false)).await;
    let allocs = wait_allocations(&store, "wide told to resize", |a| {
        of(a, "wide").iter().all(|a| a.notice.is_some())
    })
    .await;
    for a in of(&allocs, "wide") {
        let n = a.notice.as_ref().expect("notice");
        assert_eq!(
            (n.reason.as_str(), n.resize_to),
            ("Resized", Some(2)),
            "{n:?}"
        );
        assert_eq!(n.by, "default/urgent");
    }
    assert_eq!(stop_noticed(&store).await, 4);
    let allocs = wait_allocations(&store, "urgent placed, wide at 2", |a| {
        assert_whole(a, "wide");
        of(a, "urgent").len() == 1
            && of(a, "wide").len() == 2
            && of(a, "wide").iter().all(|a| a.notice.is_none())
    })
    .await;
    report(&store, &of(&allocs, "wide"), ReplicaPhase::Running).await;

    // The room frees: after the window, wide grows back to 4, with notice again.
    delete(&s, "urgent").await;
    let allocs = wait_allocations(&store, "wide told to grow", |a| {
        of(a, "urgent").is_empty()
            && !of(a, "wide").is_empty()
            && of(a, "wide").iter().all(|a| a.notice.is_some())
    })
    .await;
    for a in of(&allocs, "wide") {
        let n = a.notice.as_ref().expect("notice");
        assert_eq!(
            (n.reason.as_str(), n.resize_to),
            ("Resized", Some(4)),
            "{n:?}"
        );
    }
    assert_eq!(stop_noticed(&store).await, 2);
    wait_allocations(&store, "wide at 4 again", |a| {
        assert_whole(a, "wide");
        of(a, "wide").len() == 4 && of(a, "wide").iter().all(|a| a.notice.is_none())
    })
    .await;
    // Resizing is neither a restart nor a preemption.
    let key = WorkloadKey::new("default", "wide").expect("key").format();
    let kv = store.get(&key).await.expect("get").expect("wide");
    let w: Workload = codec::decode(&kv.key, &kv.value).expect("decode");
    assert_eq!(w.status.restarts, 0);
    assert_ne!(w.status.phase, WorkloadPhase::Preempted);
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("universal_scheduler_preemptions_total{reason=\"Resized\"} 2"),
        "{metrics}"
    );
}

/// What one round of the stream ended in.
#[derive(Debug, PartialEq)]
enum Outcome {
    BigPlaced,
    NewcomerPlaced,
    NewcomerHeld,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_gang_is_not_starved_by_a_stream_of_small_jobs() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    register(&store, &node("n1", 16, 64, 4, "L4", 24), 0).await;
    let s = Scheduler::start_with(&etcd.endpoint(), "s1", &["--starvation-seconds", "2"]).await;
    let mut running: std::collections::VecDeque<String> = Default::default();
    for i in 0..4 {
        let name = format!("small-{i}");
        create(&s, &gpu_job(&name, 1, 1, 1, 500, false)).await;
        running.push_back(name);
    }
    wait_allocations(&store, "the small jobs placed", |a| a.len() == 4).await;
    create(&s, &gpu_job("big", 2, 2, 2, 500, false)).await;

    // Each round the oldest small job ends and another arrives. Before the bound the newcomer
    // takes the freed GPU (backfill); past it the room is held until big fits.
    let mut held_since = None;
    for round in 4..200 {
        let Some(oldest) = running.pop_front() else {
            // Every small job placed before the hold has ended: the held room fits big.
            let allocs = wait_allocations(&store, "big placed in the held room", |a| {
                of(a, "big").len() == 2
            })
            .await;
            assert_whole(&allocs, "big");
            let held = held_since.expect("room held for big");
            assert!(
                round - held <= 4,
                "big waited {} rounds past the bound",
                round - held
            );
            return;
        };
        let allocs = allocations(&store).await;
        report(&store, &of(&allocs, &oldest), ReplicaPhase::Succeeded).await;
        let name = format!("small-{round}");
        create(&s, &gpu_job(&name, 1, 1, 1, 500, false)).await;
        let workload_key = WorkloadKey::new("default", name.as_str())
            .expect("key")
            .format();
        let mut outcome = None;
        wait_for(
            &store,
            "/universal/v1/",
            "big or the newcomer placed, or room held",
            |kvs| {
                let allocs: Vec<Allocation> = kvs
                    .iter()
                    .filter(|kv| kv.key.starts_with(&AllocationKey::prefix()))
                    .map(|kv| codec::decode(&kv.key, &kv.value).expect("allocation"))
                    .collect();
                let held = kvs.iter().filter(|kv| kv.key == workload_key).any(|kv| {
                    codec::decode::<Workload>(&kv.key, &kv.value).is_ok_and(|w| {
                        w.status
                            .message
                            .contains("capacity is held for default/big")
                    })
                });
                outcome = if of(&allocs, "big").len() == 2 {
                    assert_whole(&allocs, "big");
                    Some(Outcome::BigPlaced)
                } else if !of(&allocs, &name).is_empty() {
                    Some(Outcome::NewcomerPlaced)
                } else if held {
                    Some(Outcome::NewcomerHeld)
                } else {
                    None
                };
                outcome.is_some()
            },
        )
        .await;
        match outcome.expect("an outcome") {
            Outcome::BigPlaced => {
                let held = held_since.expect("big placed only once room was held for it");
                // Four GPUs free up in at most four rounds once nothing takes them.
                assert!(
                    round - held <= 4,
                    "big waited {} rounds past the bound",
                    round - held
                );
                return;
            }
            Outcome::NewcomerPlaced => {
                assert_eq!(
                    held_since, None,
                    "{name} placed ahead of big past the bound"
                );
                running.push_back(name);
            }
            Outcome::NewcomerHeld => {
                held_since.get_or_insert(round);
            }
        }
    }
    panic!("big was never placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_in_the_middle_of_a_preemption_preempts_once_and_loses_nothing() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let n1 = node("n1", 4, 64, 0, "", 0);
    register(&store, &n1, 0).await;
    let mut first = Scheduler::start(&etcd.endpoint(), "first").await;
    wait_leader(&store, None).await;
    let second = Scheduler::start(&etcd.endpoint(), "second").await;
    create(&first, &job("low-a", "default", 2000, 100, true, "true")).await;
    create(&first, &job("low-b", "default", 2000, 100, true, "true")).await;
    let before = wait_allocations(&store, "both placed", |a| a.len() == 2).await;

    create(&first, &job("high", "default", 2000, 900, false, "true")).await;
    let noticed = wait_allocations(&store, "a victim told to stop", |a| {
        a.iter().any(|a| a.notice.is_some())
    })
    .await;
    let victims: Vec<&Allocation> = noticed.iter().filter(|a| a.notice.is_some()).collect();
    assert_eq!(victims.len(), 1, "{noticed:?}");
    let victim = victims[0].workload.clone();
    let spared = if victim == "low-a" { "low-b" } else { "low-a" };
    // The leader goes before the victim has stopped; the follower takes over.
    first.kill().await;
    wait_leader(&store, Some("second")).await;
    assert_eq!(stop_noticed(&store).await, 1);
    let allocs = wait_allocations(&store, "high placed", |a| {
        of(a, "high").len() == 1 && of(a, &victim).is_empty()
    })
    .await;
    // Nothing else was stopped, nothing placed twice, nothing over the node.
    assert_eq!(allocs.len(), 2, "{allocs:?}");
    assert!(allocs.iter().all(|a| a.notice.is_none()), "{allocs:?}");
    assert_eq!(
        allocation_of(&allocs, spared),
        allocation_of(&before, spared),
        "the spared job was not touched"
    );
    assert_no_overcommit(&[n1], &allocs);
    // The victim is requeued, not lost, and comes back once there is room.
    wait_phase(&store, &victim, WorkloadPhase::Preempted).await;
    delete(&second, "high").await;
    wait_allocations(&store, "the victim placed again", |a| {
        of(a, &victim).len() == 1 && of(a, "high").is_empty()
    })
    .await;
}
