//! What an agent must not run: an allocation placed for an earlier workload of the same name,
//! and a training replica once the node's lease has been lost longer than the fencing bound
//! (the scheduler may have placed it elsewhere).

mod common;

use std::time::Duration;

use common::*;
use uni_core::model::ReplicaPhase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_of_a_recreated_workload_does_not_start() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let mut w = inference("recreated", HTTP_SERVER, Some(http_probe()));
    w.meta.uid = "uid-of-the-new-one".into();
    put_workload(&store, &w).await;

    let mut old = allocation(&w, 0, "n1");
    old.id = format!("{}-old", old.id);
    old.workload_uid = "uid-of-the-deleted-one".into();
    let mut new = allocation(&w, 1, "n1");
    new.workload_uid = w.meta.uid.clone();
    let _guard = Guard::of(&[&old, &new]);
    put_allocation(&store, &old).await;
    let s = wait_status(&store, &old, Duration::from_secs(30), "Pending", |s| {
        s.phase == ReplicaPhase::Pending
    })
    .await;
    assert!(
        s.message.contains("deleted and created again"),
        "{}",
        s.message
    );
    // The allocation of the workload as it is now runs.
    put_allocation(&store, &new).await;
    wait_status(&store, &new, Duration::from_secs(30), "Ready", |s| {
        s.phase == ReplicaPhase::Ready
    })
    .await;
    assert!(processes_of(&old.id).is_empty(), "the old allocation ran");
    assert_eq!(processes_of(&new.id).len(), 1);
    assert_eq!(
        status(&store, &old).await.map(|s| s.phase),
        Some(ReplicaPhase::Pending)
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_replicas_stop_once_the_lease_is_lost_too_long() {
    let (mut etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut c = config("n1", data.path());
    c.lease_ttl = Duration::from_secs(2);
    c.runtime.fence_after = Some(Duration::from_secs(2));
    let agent = start_agent(c, &store).await;
    let job = training("train", vec!["sleep".into(), "600".into()], 1);
    let svc = inference("keeps-serving", HTTP_SERVER, Some(http_probe()));
    put_workload(&store, &job).await;
    put_workload(&store, &svc).await;
    let rank = allocation(&job, 0, "n1");
    let replica = allocation(&svc, 0, "n1");
    let _guard = Guard::of(&[&rank, &replica]);
    put_allocation(&store, &rank).await;
    put_allocation(&store, &replica).await;
    wait_status(&store, &rank, Duration::from_secs(30), "Running", |s| {
        s.phase == ReplicaPhase::Running
    })
    .await;
    wait_status(&store, &replica, Duration::from_secs(30), "Ready", |s| {
        s.phase == ReplicaPhase::Ready
    })
    .await;
    let serving = pid_of(data.path(), &replica).expect("pid");
    assert_eq!(processes_of(&rank.id).len(), 1);

    // The store goes away: the lease is lost after its TTL, the rank stopped after the bound.
    etcd_server.kill();
    eventually(Duration::from_secs(30), "the rank stopped", || async {
        processes_of(&rank.id).is_empty().then_some(())
    })
    .await;
    assert_eq!(
        processes_of(&replica.id),
        vec![serving],
        "inference keeps serving"
    );

    // Back: the rank's end is reported with the reason; it is not started again by the agent.
    etcd_server.restart().await.expect("etcd restarts");
    let s = wait_status(&store, &rank, Duration::from_secs(30), "Failed", |s| {
        s.phase == ReplicaPhase::Failed
    })
    .await;
    assert!(s.message.contains("lease was lost"), "{}", s.message);
    assert!(processes_of(&rank.id).is_empty());
    assert_eq!(processes_of(&replica.id), vec![serving]);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_inference_replicas_start_again_once_the_lease_is_held() {
    let (mut etcd_server, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut c = config("n1", data.path());
    c.lease_ttl = Duration::from_secs(2);
    c.runtime.fence_after = Some(Duration::from_secs(2));
    c.runtime.fence_inference = true;
    let agent = start_agent(c, &store).await;
    let svc = inference("fenced-svc", HTTP_SERVER, Some(http_probe()));
    let (replica, _guard) = run_replica(&store, &svc, "n1", ReplicaPhase::Ready).await;
    let before = pid_of(data.path(), &replica).expect("pid");

    etcd_server.kill();
    eventually(Duration::from_secs(30), "the replica stopped", || async {
        processes_of(&replica.id).is_empty().then_some(())
    })
    .await;
    etcd_server.restart().await.expect("etcd restarts");
    let after = eventually(Duration::from_secs(30), "started again", || async {
        pid_of(data.path(), &replica)
            .filter(|p| *p != before && processes_of(&replica.id) == vec![*p])
    })
    .await;
    let s = wait_status(
        &store,
        &replica,
        Duration::from_secs(30),
        "Ready again, the fencing counted as a restart",
        |s| s.phase == ReplicaPhase::Ready && s.restarts == 1,
    )
    .await;
    assert_eq!(processes_of(&replica.id), vec![after]);
    assert_eq!(s.restarts, 1, "{s:?}");
    agent.shutdown().await;
}
