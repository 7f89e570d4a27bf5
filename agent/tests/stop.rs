//! Stopping an allocation kills its whole process tree within the grace period: children that
//! ignore SIGTERM, and a grandchild that left the process group with setsid.

mod common;

use std::time::{Duration, Instant};

use common::*;
use uni_agent::process;
use uni_core::model::ReplicaPhase;

/// Ignores SIGTERM, starts two children that ignore it too, and one in a new session.
const TREE: &str = r#"trap '' TERM
sleep 1000 &
sleep 1000 &
setsid sleep 1000 &
echo started
wait"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_the_process_tree_within_the_grace_period() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let grace = 2;
    let w = training("tree", vec!["sh".into(), "-c".into(), TREE.into()], grace);
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "n1");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    wait_status(&store, &a, Duration::from_secs(20), "Running", |s| {
        s.phase == ReplicaPhase::Running
    })
    .await;
    // sh and its three sleeps.
    let tree: Vec<(i32, u64)> = eventually(Duration::from_secs(10), "four processes", || async {
        let p = processes_of(&a.id);
        (p.len() == 4).then_some(p)
    })
    .await
    .into_iter()
    .filter_map(|pid| Some((pid, process::start_time(pid)?)))
    .collect();

    let stopped = Instant::now();
    delete_allocation(&store, &a).await;
    eventually(
        Duration::from_secs(u64::from(grace) + 5),
        "the whole tree gone",
        || async { processes_of(&a.id).is_empty().then_some(()) },
    )
    .await;
    let took = stopped.elapsed();
    // SIGTERM was ignored, so SIGKILL came at the end of the grace period, not before.
    assert!(
        took >= Duration::from_secs(u64::from(grace)) - Duration::from_millis(200),
        "{took:?}"
    );
    assert!(
        took <= Duration::from_secs(u64::from(grace) + 3),
        "{took:?}"
    );
    for (pid, start) in tree {
        assert!(!process::alive(pid, start), "process {pid} survived");
    }
    eventually(
        Duration::from_secs(10),
        "status and files removed",
        || async {
            (status(&store, &a).await.is_none() && state(data.path(), &a).is_none()).then_some(())
        },
    )
    .await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_honours_sigterm_stops_at_once() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let w = training("polite", vec!["sleep".into(), "1000".into()], 30);
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "n1");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    wait_status(&store, &a, Duration::from_secs(20), "Running", |s| {
        s.phase == ReplicaPhase::Running
    })
    .await;
    let stopped = Instant::now();
    delete_allocation(&store, &a).await;
    eventually(Duration::from_secs(10), "process gone", || async {
        processes_of(&a.id).is_empty().then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    agent.shutdown().await;
}
