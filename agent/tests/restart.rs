//! Restarting the agent (gracefully or by a crash) keeps the same replica processes and
//! starts no duplicates; an allocation deleted while the agent was down is stopped and cleaned
//! up when it comes back; an agent that crashed between starting a run and recording it adopts
//! that run instead of starting another.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use uni_agent::runtime::ReplicaDir;
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, UnixMillis};
use uni_core::store::KvStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_keeps_processes_without_duplicates() {
    let (etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let args = agent_args("n1", &etcd_server.endpoint(), data.path());
    let log = |n: u32| data.path().join(format!("agent-{n}.log"));

    let first = AgentProcess::spawn(&args, &log(1));
    let w = inference("svc", HTTP_SERVER, Some(http_probe()));
    let (a, _guard) = run_replica(&store, &w, "n1", ReplicaPhase::Ready).await;
    let pid = pid_of(data.path(), &a).expect("pid");
    assert_eq!(processes_of(&a.id), vec![pid]);

    // Graceful stop: the replica keeps running.
    assert!(first.terminate().success());
    assert_eq!(processes_of(&a.id), vec![pid]);
    let (second, _) = respawn(&args, &log(2), &store, &a).await;
    assert_eq!(processes_of(&a.id), vec![pid], "same process, no duplicate");
    assert_eq!(pid_of(data.path(), &a), Some(pid));
    let log2 = std::fs::read_to_string(log(2)).expect("log");
    assert!(log2.contains("re-adopted running process"), "{log2}");

    // A crash: the same.
    second.crash();
    assert_eq!(processes_of(&a.id), vec![pid]);
    let (third, s) = respawn(&args, &log(3), &store, &a).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_launch_adopts_the_started_run() {
    let (etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let args = agent_args("n1", &etcd_server.endpoint(), data.path());
    let log = |n: u32| data.path().join(format!("agent-{n}.log"));

    let first = AgentProcess::spawn(&args, &log(1));
    let w = inference("svc-mid-launch", HTTP_SERVER, Some(http_probe()));
    let (a, _guard) = run_replica(&store, &w, "n1", ReplicaPhase::Ready).await;
    let pid = pid_of(data.path(), &a).expect("pid");
    first.crash();
    // What a crash after the shim started the process, before the agent saved its answer,
    // leaves on disk: the intent, and no process ids.
    let dir = ReplicaDir::new(&data.path().join("replicas"), &a.id).expect("dir");
    let mut st = dir.load().expect("state").expect("state");
    st.launched = None;
    st.launching = true;
    dir.save(&st).expect("save");

    let (second, s) = respawn(&args, &log(2), &store, &a).await;
    assert_eq!(s.restarts, 0);
    assert_eq!(processes_of(&a.id), vec![pid], "same process, no duplicate");
    assert_eq!(pid_of(data.path(), &a), Some(pid));
    let st = state(data.path(), &a).expect("state");
    assert!(!st.launching && st.run == 1, "{st:?}");
    let log2 = std::fs::read_to_string(log(2)).expect("log");
    assert!(
        log2.contains("found the run the previous agent started"),
        "{log2}"
    );
    assert!(second.terminate().success());
}

/// Starts an agent and waits until it reports the replica Ready.
async fn respawn(
    args: &[String],
    log: &Path,
    store: &Arc<dyn KvStore>,
    a: &Allocation,
) -> (AgentProcess, ReplicaStatus) {
    let since = UnixMillis::now();
    let agent = AgentProcess::spawn(args, log);
    let s = wait_status(
        store,
        a,
        Duration::from_secs(30),
        "Ready reported by the new agent",
        |s| s.phase == ReplicaPhase::Ready && s.updated > since,
    )
    .await;
    (agent, s)
}
