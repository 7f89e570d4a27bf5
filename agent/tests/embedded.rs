//! Dev mode: the same agent over the embedded store, in this process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use uni_core::model::ReplicaPhase;
use uni_core::store::{EmbeddedStore, KvStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn KvStore> = Arc::new(
        EmbeddedStore::open(dir.path().join("store.redb"))
            .await
            .expect("embedded store"),
    );
    let agent = start_agent(config("dev", &dir.path().join("agent")), &store).await;
    eventually(Duration::from_secs(10), "registered", || async {
        node(&store, "dev").await.filter(|(n, _)| n.status.ready)
    })
    .await;
    let w = training(
        "hello",
        vec![
            "sh".into(),
            "-c".into(),
            "echo hello from $UNIVERSAL_NODE".into(),
        ],
        5,
    );
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "dev");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    let s = wait_status(&store, &a, Duration::from_secs(20), "Succeeded", |s| {
        s.phase == ReplicaPhase::Succeeded
    })
    .await;
    assert_eq!(s.exit_code, Some(0));
    delete_allocation(&store, &a).await;
    eventually(Duration::from_secs(10), "status removed", || async {
        status(&store, &a).await.is_none().then_some(())
    })
    .await;
    agent.shutdown().await;
}

/// Without a shim executable (an embedding binary that has none), replicas are supervised on
/// agent threads: they run, restart and stream logs the same way, and stop with the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_supervision_runs_restarts_and_follows_logs() {
    use tokio_stream::StreamExt;
    use uni_proto::v1::log_service_client::LogServiceClient;
    use uni_proto::v1::StreamLogsRequest;

    let dir = tempfile::tempdir().expect("tempdir");
    let (_etcd, store) = etcd().await;
    let mut cfg = config("n1", dir.path());
    cfg.shim = Some(uni_agent::ShimMode::InProcess);
    let agent = start_agent(cfg, &store).await;

    // A counter, followed as it writes, until it ends.
    let w = training(
        "count",
        vec![
            "sh".into(),
            "-c".into(),
            "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo done >&2".into(),
        ],
        5,
    );
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "n1");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    wait_status(&store, &a, Duration::from_secs(20), "started", |s| {
        s.phase == ReplicaPhase::Running || s.phase.is_terminal()
    })
    .await;
    let mut client = LogServiceClient::connect(format!("http://{}", agent.grpc_addr()))
        .await
        .expect("connect");
    let mut stream = client
        .stream_logs(StreamLogsRequest {
            namespace: NS.into(),
            workload: "count".into(),
            follow: true,
            ..StreamLogsRequest::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    let followed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(c) = stream.next().await {
            out.extend(c.expect("chunk").data);
        }
    })
    .await;
    assert!(
        followed.is_ok(),
        "the followed stream ends with the process"
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text, "line 1\nline 2\nline 3\nline 4\nline 5\ndone\n");
    wait_status(&store, &a, Duration::from_secs(20), "Succeeded", |s| {
        s.phase == ReplicaPhase::Succeeded
    })
    .await;

    // An inference replica is restarted after a crash.
    let svc = inference("loop", "import time\nwhile True: time.sleep(1)\n", None);
    put_workload(&store, &svc).await;
    let b = allocation(&svc, 0, "n1");
    let _guard_b = Guard::of(&[&b]);
    put_allocation(&store, &b).await;
    wait_status(&store, &b, Duration::from_secs(20), "Ready", |s| {
        s.phase == ReplicaPhase::Ready
    })
    .await;
    let pid = pid_of(dir.path(), &b).expect("pid");
    kill(pid, libc::SIGKILL);
    wait_status(&store, &b, Duration::from_secs(20), "restarted", |s| {
        s.phase == ReplicaPhase::Ready && s.restarts == 1
    })
    .await;
    // One process (python3 may start through a wrapper script, which then execs it).
    eventually(Duration::from_secs(10), "one process", || async {
        (processes_of(&b.id).len() == 1).then_some(())
    })
    .await;
    // Replicas supervised in-process stop with the agent.
    agent.shutdown().await;
    assert!(processes_of(&b.id).is_empty());
    // ... and leave no files or cgroups behind, finished workers included.
    assert!(state(dir.path(), &a).is_none() && state(dir.path(), &b).is_none());
}
