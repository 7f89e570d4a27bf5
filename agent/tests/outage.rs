//! etcd down for 30 s: workloads keep running (and are even restarted by the agent), and the
//! agent registers again and reports what happened when etcd returns.

mod common;

use std::time::{Duration, Instant};

use common::*;
use uni_core::model::ReplicaPhase;

const OUTAGE: Duration = Duration::from_secs(30);

/// How often the replica is checked during the outage.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_keep_running_while_etcd_is_down() {
    let (mut etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let w = inference("steady", HTTP_SERVER, Some(http_probe()));
    let (a, _guard) = run_replica(&store, &w, "n1", ReplicaPhase::Ready).await;
    let (_, lease_before) = node(&store, "n1").await.expect("node");
    let pid = pid_of(data.path(), &a).expect("pid");

    etcd_server.kill();
    let down = Instant::now();
    // The process is checked every second for the whole outage.
    let mut checks = 0;
    // Each check: the process the agent recorded is still the one running. (A duplicate run
    // would show at the end, where exactly one process must hold the replica.)
    let kept = |pid: i32| {
        let running = processes_of(&a.id);
        assert!(
            running.contains(&pid) && pid_of(data.path(), &a) == Some(pid),
            "replica {pid} kept running: {}",
            describe(&running)
        );
    };
    while down.elapsed() < OUTAGE / 2 {
        kept(pid);
        checks += 1;
        tokio::time::sleep(CHECK_EVERY).await;
    }
    // Supervision goes on without etcd: a crash is restarted.
    kill(pid, libc::SIGKILL);
    let restarted = eventually(Duration::from_secs(10), "restart without etcd", || async {
        pid_of(data.path(), &a).filter(|p| *p != pid && processes_of(&a.id) == vec![*p])
    })
    .await;
    while down.elapsed() < OUTAGE {
        kept(restarted);
        checks += 1;
        tokio::time::sleep(CHECK_EVERY).await;
    }
    assert!(checks >= 25);

    etcd_server.restart().await.expect("etcd restarts");
    // Registered again under a new live lease (the lost one revoked), the restart reported.
    let lease = eventually(Duration::from_secs(30), "registered again", || async {
        let (n, lease) = node(&store, "n1").await?;
        let alive = store.lease_keep_alive(lease).await.is_ok();
        (n.status.ready && lease != 0 && lease != lease_before && alive).then_some(lease)
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the lost lease revoked",
        || async {
            store
                .lease_keep_alive(lease_before)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    println!("lease before the outage {lease_before}, after {lease}");
    wait_status(
        &store,
        &a,
        Duration::from_secs(30),
        "restart reported",
        |s| s.phase == ReplicaPhase::Ready && s.restarts == 1,
    )
    .await;
    let running = processes_of(&a.id);
    assert_eq!(running, vec![restarted], "{}", describe(&running));
    delete_allocation(&store, &a).await;
    eventually(Duration::from_secs(15), "stopped", || async {
        processes_of(&a.id).is_empty().then_some(())
    })
    .await;
    agent.shutdown().await;
}
