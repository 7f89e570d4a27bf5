//! Fault injection with real parts: a 3-member etcd cluster on loopback, three `uni-scheduler`
//! processes with 2 s leases, simulated GPU nodes and one real `uni-agent` running real
//! processes, under a mixed load (CPU services, fractional-GPU services, GPU gangs). One fault
//! at a time: the leader killed, the leader stopped past its lease and resumed, an etcd member
//! killed and then quorum lost for 20 s, the agent stopped past its lease and grace and resumed,
//! the agent killed mid-launch, every scheduler restarted at once. After each: every accepted
//! workload exists, no node is over capacity in any resource or device, no replica index is
//! allocated twice or runs twice, and everything is placed again; recovery times are printed.
//!
//! Needs the `uni-agent` binary beside `uni-scheduler` (`cargo test --workspace` builds both).

mod harness;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::agent::AgentProcess;
use harness::{assert_no_overcommit, fractional, inference, node, register, training, Scheduler};
use uni_core::model::{Allocation, Node, ReplicaPhase, ReplicaStatus, Workload};
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey};
use uni_core::store::{codec, KvStore, RangeOptions};
use uni_core::testing::EtcdCluster;
use uni_proto::v1 as pb;

/// Longest a recovery may take before the test fails.
const RECOVERY: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);
/// How long quorum stays lost.
const QUORUM_LOSS: Duration = Duration::from_secs(20);
/// The real agent's node, named per test process: processes are found host-wide by it.
static REAL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("real-{}", std::process::id()));

/// A service of `replicas` sleeping processes; `pinned` keeps it on the real agent.
fn cpu_service(name: &str, replicas: u32, pinned: bool) -> Workload {
    let mut w = inference(name, replicas, "50m");
    if pinned {
        if let uni_core::model::WorkloadSpec::Inference(s) = &mut w.spec {
            s.template.placement.node_selector = "chaos=real".parse().expect("selector");
        }
    }
    w
}

/// Replicas (allocations) a workload has once placed.
fn wanted(w: &Workload) -> usize {
    match &w.spec {
        uni_core::model::WorkloadSpec::Inference(s) => s.replicas.desired as usize,
        uni_core::model::WorkloadSpec::Training(s) => s.workers.max as usize,
    }
}

/// Live replica processes of the real node, with their `ns/workload/replica`.
fn replica_processes() -> Vec<(i32, String)> {
    harness::agent::replica_processes(&REAL)
}

/// What the cluster holds, read in one go.
struct Snapshot {
    nodes: Vec<Node>,
    allocs: Vec<Allocation>,
    workloads: Vec<String>,
}

async fn snapshot(store: &Arc<dyn KvStore>) -> uni_core::Result<Snapshot> {
    let nodes = store
        .range(&NodeKey::prefix(), RangeOptions::default())
        .await?;
    let allocs = store
        .range(&AllocationKey::prefix(), RangeOptions::default())
        .await?;
    let workloads = store
        .range(
            &uni_core::store::keys::WorkloadKey::prefix(),
            RangeOptions::default(),
        )
        .await?;
    Ok(Snapshot {
        nodes: nodes
            .kvs
            .iter()
            .map(|kv| codec::decode(&kv.key, &kv.value).expect("node"))
            .collect(),
        allocs: allocs
            .kvs
            .iter()
            .map(|kv| codec::decode(&kv.key, &kv.value).expect("allocation"))
            .collect(),
        workloads: workloads
            .kvs
            .iter()
            .map(|kv| {
                codec::decode::<Workload>(&kv.key, &kv.value)
                    .expect("workload")
                    .meta
                    .name
            })
            .collect(),
    })
}

/// The invariants that must hold at every moment: checked on every look.
fn assert_safe(s: &Snapshot, accepted: &BTreeMap<String, usize>) {
    for name in accepted.keys() {
        assert!(s.workloads.contains(name), "accepted workload {name} lost");
    }
    assert_no_overcommit(&s.nodes, &s.allocs);
    let mut seen = HashMap::new();
    for a in &s.allocs {
        if let Some(other) = seen.insert(a.replica_key(), &a.id) {
            panic!(
                "replica {} allocated twice: {other} and {}",
                a.replica_key(),
                a.id
            );
        }
    }
    let mut running: HashMap<String, Vec<i32>> = HashMap::new();
    for (pid, replica) in replica_processes() {
        running.entry(replica).or_default().push(pid);
    }
    for (replica, pids) in running {
        assert!(pids.len() <= 1, "replica {replica} runs twice: {pids:?}");
    }
}

/// Whether every accepted workload is placed whole.
fn placed(s: &Snapshot, accepted: &BTreeMap<String, usize>) -> bool {
    accepted.iter().all(|(name, n)| {
        s.allocs
            .iter()
            .filter(|a| a.namespace == "default" && &a.workload == name)
            .count()
            == *n
    })
}

/// Checks the invariants until everything is placed again; returns how long that took.
async fn recover(
    store: &Arc<dyn KvStore>,
    accepted: &BTreeMap<String, usize>,
    what: &str,
    since: Instant,
) -> Duration {
    recover_until(store, accepted, what, since, |_| true).await
}

async fn recover_until(
    store: &Arc<dyn KvStore>,
    accepted: &BTreeMap<String, usize>,
    what: &str,
    since: Instant,
    mut also: impl FnMut(&Snapshot) -> bool,
) -> Duration {
    loop {
        if let Ok(s) = snapshot(store).await {
            assert_safe(&s, accepted);
            if placed(&s, accepted) && also(&s) {
                let took = since.elapsed();
                println!("recovered from {what} in {:.1}s", took.as_secs_f64());
                return took;
            }
        }
        assert!(
            since.elapsed() < RECOVERY,
            "not recovered from {what} within {RECOVERY:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn create(s: &Scheduler, w: &Workload) -> Result<(), tonic::Status> {
    let mut client = s.client().await;
    let mut req = tonic::Request::new(pb::CreateWorkloadRequest {
        workload: Some(pb::Workload::from(w)),
        dry_run: false,
    });
    req.set_timeout(Duration::from_secs(10));
    client.create_workload(req).await.map(|_| ())
}

async fn accept(s: &Scheduler, w: &Workload, accepted: &mut BTreeMap<String, usize>) {
    create(s, w).await.expect("create workload");
    accepted.insert(w.meta.name.clone(), wanted(w));
}

/// Submits one more fractional service through `s` and waits until everything is placed.
/// Around a fault a write may fail (`UNAVAILABLE`: an etcd member being reconnected to, a
/// leader being elected): it is retried as a client does, until accepted. A retry that finds
/// the workload there means the failed attempt was applied.
async fn place_one_more(
    s: &Scheduler,
    store: &Arc<dyn KvStore>,
    accepted: &mut BTreeMap<String, usize>,
    name: &str,
    what: &str,
    since: Instant,
) -> Duration {
    let w = fractional(name, 2);
    let mut retried = false;
    loop {
        match create(s, &w).await {
            Ok(()) => break,
            Err(e) if retried && e.code() == tonic::Code::AlreadyExists => break,
            Err(e) if e.code() == tonic::Code::Unavailable && since.elapsed() < RECOVERY => {
                println!("{what}: create refused ({}), retrying", e.message());
                retried = true;
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("create after {what}: {e}"),
        }
    }
    accepted.insert(w.meta.name.clone(), wanted(&w));
    recover(store, accepted, what, since).await
}

async fn leader(store: &Arc<dyn KvStore>) -> String {
    let since = Instant::now();
    loop {
        if let Ok(Some(kv)) = store.get("/universal/v1/election/scheduler").await {
            return String::from_utf8_lossy(&kv.value).into_owned();
        }
        assert!(since.elapsed() < RECOVERY, "no leader");
        tokio::time::sleep(POLL).await;
    }
}

async fn status(store: &Arc<dyn KvStore>, a: &Allocation) -> Option<ReplicaStatus> {
    let key = StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)
        .ok()?
        .format();
    let kv = store.get(&key).await.ok()??;
    codec::decode(&key, &kv.value).ok()
}

async fn allocations_on(store: &Arc<dyn KvStore>, node: &str) -> Vec<Allocation> {
    snapshot(store)
        .await
        .map(|s| s.allocs.into_iter().filter(|a| a.node == node).collect())
        .unwrap_or_default()
}

/// The schedulers, by identity.
struct Replicas {
    endpoints: String,
    running: BTreeMap<String, Scheduler>,
}

impl Replicas {
    async fn start(&mut self, identity: &str) {
        let s = Scheduler::start(&self.endpoints, identity).await;
        self.running.insert(identity.to_string(), s);
    }

    /// A replica other than `not`.
    fn other(&self, not: &str) -> &Scheduler {
        self.running
            .iter()
            .find(|(id, _)| *id != not)
            .map(|(_, s)| s)
            .expect("another replica")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_survives_one_fault_at_a_time() {
    let mut etcd = EtcdCluster::start(3).await.expect("etcd cluster");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let endpoints = etcd.endpoints().join(",");
    let mut replicas = Replicas {
        endpoints: endpoints.clone(),
        running: BTreeMap::new(),
    };
    for id in ["s1", "s2", "s3"] {
        replicas.start(id).await;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let mut agent = AgentProcess::start(&endpoints, data.path(), &REAL, "chaos=real");
    let mut accepted = BTreeMap::new();

    // CPU services go to the real agent, the only node at first.
    let start = Instant::now();
    let s = replicas.other("");
    for i in 0..3 {
        accept(
            s,
            &cpu_service(&format!("cpu-{i}"), 2, false),
            &mut accepted,
        )
        .await;
    }
    recover_until(&store, &accepted, "start-up", start, |s| {
        s.allocs.iter().all(|a| a.node == *REAL)
    })
    .await;
    let on_real = allocations_on(&store, &REAL).await;
    let start = Instant::now();
    loop {
        let mut ready = 0;
        for a in &on_real {
            if status(&store, a)
                .await
                .is_some_and(|s| s.allocation_id == a.id && s.phase == ReplicaPhase::Ready)
            {
                ready += 1;
            }
        }
        if ready == on_real.len() {
            break;
        }
        assert!(start.elapsed() < RECOVERY, "real replicas not Ready");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(replica_processes().len(), on_real.len());

    // Simulated GPU nodes, and GPU work on them.
    for i in 0..4 {
        register(
            &store,
            &node(&format!("gpu-{i}"), 32, 128, 4, "NVIDIA A100-SXM4-80GB", 80),
            0,
        )
        .await;
    }
    for i in 0..3 {
        accept(s, &fractional(&format!("frac-{i}"), 2), &mut accepted).await;
    }
    for i in 0..2 {
        accept(s, &training(&format!("gang-{i}"), 2, 2), &mut accepted).await;
    }
    recover(&store, &accepted, "the GPU load", Instant::now()).await;
    let mut times = Vec::new();

    // 1. kill -9 of the leader; work submitted meanwhile is placed by the next one.
    let first = leader(&store).await;
    let t = Instant::now();
    replicas
        .running
        .get_mut(&first)
        .expect("leader")
        .kill()
        .await;
    replicas.running.remove(&first);
    let took = place_one_more(
        replicas.other(&first),
        &store,
        &mut accepted,
        "after-kill",
        "kill -9 of the leader",
        t,
    )
    .await;
    times.push(("leader killed", took));
    assert_ne!(leader(&store).await, first);
    replicas.start(&first).await;

    // 2. SIGSTOP of the leader past its lease, then SIGCONT: it must not lead (or write) again.
    let stopped = leader(&store).await;
    let t = Instant::now();
    replicas.running[&stopped].signal("STOP");
    let next = loop {
        let l = leader(&store).await;
        if l != stopped {
            break l;
        }
        assert!(
            t.elapsed() < RECOVERY,
            "no new leader while {stopped} is stopped"
        );
        tokio::time::sleep(POLL).await;
    };
    let took = place_one_more(
        replicas.other(&stopped),
        &store,
        &mut accepted,
        "after-stop",
        "SIGSTOP of the leader",
        t,
    )
    .await;
    times.push(("leader stopped", took));
    replicas.running[&stopped].signal("CONT");
    let resumed = Instant::now();
    loop {
        let text = replicas.running[&stopped].metrics_text().await;
        if text.contains("universal_scheduler_is_leader 0") {
            break;
        }
        assert!(
            resumed.elapsed() < RECOVERY,
            "{stopped} still thinks it leads"
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        leader(&store).await,
        next,
        "the deposed leader took over again"
    );
    recover(&store, &accepted, "SIGCONT of the deposed leader", resumed).await;

    // 3. One etcd member killed: nothing stops. Two: writes fail clearly; then all resumes.
    let t = Instant::now();
    etcd.kill(2);
    let took = place_one_more(
        replicas.other(""),
        &store,
        &mut accepted,
        "one-member-down",
        "one etcd member killed",
        t,
    )
    .await;
    times.push(("etcd member killed", took));
    etcd.kill(1);
    let lost = Instant::now();
    let refused = create(replicas.other(""), &cpu_service("no-quorum", 1, false))
        .await
        .expect_err("a write without quorum");
    println!(
        "without quorum: {:?}: {}",
        refused.code(),
        refused.message()
    );
    assert!(
        matches!(
            refused.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ),
        "{refused}"
    );
    let rest = QUORUM_LOSS.saturating_sub(lost.elapsed());
    tokio::time::sleep(rest).await;
    let t = Instant::now();
    etcd.restart(1).await.expect("member 1 back");
    etcd.restart(2).await.expect("member 2 back");
    let took = place_one_more(
        replicas.other(""),
        &store,
        &mut accepted,
        "quorum-back",
        "quorum lost for 20 s",
        t,
    )
    .await;
    times.push(("quorum lost", took));

    // 4. The real agent stopped past its lease and the node grace: its replicas move; when
    //    it resumes, its old processes stop.
    assert!(!allocations_on(&store, &REAL).await.is_empty());
    assert!(!replica_processes().is_empty());
    let t = Instant::now();
    agent.signal("STOP");
    let took = recover_until(&store, &accepted, "SIGSTOP of the agent", t, |s| {
        !s.allocs.iter().any(|a| a.node == *REAL)
    })
    .await;
    times.push(("agent stopped", took));
    agent.signal("CONT");
    let resumed = Instant::now();
    loop {
        if replica_processes().is_empty() {
            break;
        }
        assert!(resumed.elapsed() < RECOVERY, "old replicas still run");
        tokio::time::sleep(POLL).await;
    }
    println!(
        "old replicas stopped {:.1}s after the agent resumed",
        resumed.elapsed().as_secs_f64()
    );

    // 5. The agent killed mid-launch (its intent saved, the shim's answer not yet recorded):
    //    restarted, it adopts the run and runs the replica exactly once.
    let pinned = cpu_service("pinned", 1, true);
    let t = Instant::now();
    accept(replicas.other(""), &pinned, &mut accepted).await;
    let launching = || {
        std::fs::read_dir(data.path().join("replicas"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("default.pinned.")
            })
            .any(|e| {
                std::fs::read_to_string(e.path().join("state.json"))
                    .is_ok_and(|s| s.contains("\"launching\": true"))
            })
    };
    while !launching() {
        assert!(t.elapsed() < RECOVERY, "pinned never launched");
        std::thread::sleep(Duration::from_millis(1));
    }
    agent.signal("STOP");
    // Frozen with the intent on disk (unless it recorded the answer in between).
    let caught = launching();
    let alloc = allocations_on(&store, &REAL)
        .await
        .into_iter()
        .next()
        .expect("pinned allocation");
    agent.crash();
    agent.restart();
    loop {
        let ready = status(&store, &alloc)
            .await
            .is_some_and(|s| s.allocation_id == alloc.id && s.phase == ReplicaPhase::Ready);
        if ready && replica_processes().len() == 1 {
            break;
        }
        assert!(t.elapsed() < RECOVERY, "pinned replica not running once");
        tokio::time::sleep(POLL).await;
    }
    let took = recover(&store, &accepted, "kill -9 of the agent mid-launch", t).await;
    times.push(("agent killed mid-launch", took));
    // Stopped with the intent on disk, the agent may not have started the shim yet: the
    // restarted one then starts the run itself; if it had, the new one adopts it. Either
    // way the replica ran once (checked above); which it was is reported.
    let log = std::fs::read_to_string(data.path().join("agent.log")).unwrap_or_default();
    let adopted = log
        .lines()
        .any(|l| l.contains("found the run the previous agent started") && l.contains(&alloc.id));
    println!("crash mid-launch: intent on disk {caught}, run adopted {adopted}");

    // 6. Every scheduler restarted at once.
    let t = Instant::now();
    let ids: Vec<String> = replicas.running.keys().cloned().collect();
    for s in replicas.running.values_mut() {
        s.kill().await;
    }
    replicas.running.clear();
    for id in &ids {
        replicas.start(id).await;
    }
    let took = place_one_more(
        replicas.other(""),
        &store,
        &mut accepted,
        "after-restart",
        "restart of every scheduler",
        t,
    )
    .await;
    times.push(("all schedulers restarted", took));

    println!("recovery times:");
    for (fault, took) in &times {
        println!("  {fault:<26} {:>5.1}s", took.as_secs_f64());
    }
}
