//! Restarting the agent (gracefully or by a crash) keeps the same replica processes and
//! starts no duplicates; an allocation deleted while the agent was down is stopped and cleaned
//! up when it comes back.

mod common;

use std::time::Duration;

use common::*;
use uni_core::model::{ReplicaPhase, UnixMillis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_keeps_processes_without_duplicates() {
    let (etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let args = agent_args("n1", &etcd_server.endpoint(), data.path());
    let log = |n: u32| data.path().join(format!("agent-{n}.log"));

    let first = AgentProcess::spawn(&args, &log(1));
    let w = inference("svc", HTTP_SERVER, Some(http_probe()));
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "n1");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    wait_status(&store, &a, Duration::from_secs(30), "Ready", |s| {
        s.phase == ReplicaPhase::Ready
    })
    .await;
    let pid = pid_of(data.path(), &a).expect("pid");
    assert_eq!(processes_of(&a.id), vec![pid]);

    // Graceful stop: the replica keeps running.
    assert!(first.terminate().success());
    assert_eq!(processes_of(&a.id), vec![pid]);
    let since = UnixMillis::now();
    let second = AgentProcess::spawn(&args, &log(2));
    wait_status(
        &store,
        &a,
        Duration::from_secs(30),
        "Ready reported by the new agent",
        |s| s.phase == ReplicaPhase::Ready && s.updated > since,
    )
    .await;
    assert_eq!(processes_of(&a.id), vec![pid], "same process, no duplicate");
    assert_eq!(pid_of(data.path(), &a), Some(pid));
    let log2 = std::fs::read_to_string(log(2)).expect("log");
    assert!(log2.contains("re-adopted running process"), "{log2}");

    // A crash: the same.
    second.crash();
    assert_eq!(processes_of(&a.id), vec![pid]);
    let since = UnixMillis::now();
    let third = AgentProcess::spawn(&args, &log(3));
    let s = wait_status(
        &store,
        &a,
        Duration::from_secs(30),
        "Ready after the crash",
        |s| s.phase == ReplicaPhase::Ready && s.updated > since,
    )
    .await;
    assert_eq!(s.restarts, 0);
    assert_eq!(processes_of(&a.id), vec![pid], "same process, no duplicate");

    // Deleted while no agent ran: the next agent stops it and cleans up.
    third.crash();
    delete_allocation(&store, &a).await;
    let fourth = AgentProcess::spawn(&args, &log(4));
    eventually(
        Duration::from_secs(30),
        "orphan stopped and cleaned up",
        || async {
            (processes_of(&a.id).is_empty()
                && status(&store, &a).await.is_none()
                && state(data.path(), &a).is_none())
            .then_some(())
        },
    )
    .await;
    assert!(fourth.terminate().success());
}
