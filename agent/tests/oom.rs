//! A process that exceeds its memory limit is killed by the kernel and reported OOMKilled; the
//! cgroup carries the allocation's cpu and memory limits.

mod common;

use std::time::Duration;

use common::*;
use uni_agent::cgroup::{CgroupConfig, CgroupManager};
use uni_core::model::ReplicaPhase;

const HOG: &str = "import time\nx = []\nfor i in range(64):\n    x.append(b'\\x01' * (16 << 20))\nprint('survived')\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_memory_limit_is_reported_oom_killed() {
    if let Err(reason) = CgroupManager::detect(&CgroupConfig::default(), 1.0).availability() {
        println!("SKIPPED: no usable memory cgroup here ({reason}); OOM kills cannot be detected");
        return;
    }
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let w = training("hog", vec!["python3".into(), "-c".into(), HOG.into()], 5);
    put_workload(&store, &w).await;
    let mut a = allocation(&w, 0, "n1");
    a.memory_bytes = 64 << 20;
    a.compute_milli = 500;
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;

    // The limits are in place while it runs (or once it has run).
    let cg = eventually(Duration::from_secs(20), "cgroup created", || async {
        state(data.path(), &a).and_then(|s| s.cgroup)
    })
    .await;
    let memory = cg.memory.clone().expect("memory cgroup");
    let cpu = cg.cpu.clone().expect("cpu cgroup");
    if cg.v2 {
        assert_eq!(
            std::fs::read_to_string(memory.join("memory.max"))
                .expect("memory.max")
                .trim(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.max"))
                .expect("cpu.max")
                .trim(),
            "50000 100000"
        );
    } else {
        assert_eq!(
            std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
                .expect("limit")
                .trim(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
                .expect("quota")
                .trim(),
            "50000"
        );
    }

    let s = wait_status(&store, &a, Duration::from_secs(60), "OOMKilled", |s| {
        s.phase.is_terminal()
    })
    .await;
    assert_eq!(s.phase, ReplicaPhase::OomKilled, "{s:?}");
    assert!(s.message.contains("memory limit"), "{}", s.message);
    assert_eq!(s.signal, Some(libc::SIGKILL));
    assert!(cg.oom_kills() >= 1);

    // A finished worker stays reported until its allocation goes; then its cgroup goes too.
    delete_allocation(&store, &a).await;
    eventually(Duration::from_secs(15), "cgroup removed", || async {
        (!memory.exists() && !cpu.exists() && status(&store, &a).await.is_none()).then_some(())
    })
    .await;
    agent.shutdown().await;
}
