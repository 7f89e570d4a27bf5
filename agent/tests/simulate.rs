//! `uni-agent --simulate 10000`: ten thousand simulated nodes, each under its own lease, from
//! the openb node list; their allocations report Running. Prints the process's memory and CPU
//! use (registration, and steady state over two keep-alive rounds).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use uni_core::model::{Allocation, ReplicaPhase};
use uni_core::store::keys::{NodeKey, TypedKey};
use uni_core::store::{codec, KvStore, RangeOptions};

const NODES: usize = 10_000;
const TTL_SECONDS: u64 = 30;

/// The openb GPU node list from the shared data beside the repository, else a small YAML
/// profile written here.
fn profile(dir: &Path) -> PathBuf {
    let openb = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/openb/openb_node_list_gpu_node.csv");
    if openb.exists() {
        return openb;
    }
    println!(
        "openb node list not found at {}; using a YAML profile",
        openb.display()
    );
    let p = dir.join("profile.yaml");
    std::fs::write(
        &p,
        "nodes:\n  - {name: v100, count: 600, cpus: 96, memory: 512Gi, gpu_model: V100M32, gpus: 8}\n  - {name: t4, count: 400, cpus: 64, memory: 256Gi, gpu_model: T4, gpus: 2}\n  - {name: cpu, count: 200, cpus: 64, memory: 256Gi}\n",
    )
    .expect("write profile");
    p
}

/// (resident KiB, peak resident KiB, CPU seconds) of a process.
fn usage(pid: i32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (kib("VmRSS:"), kib("VmHWM:"), ticks as f64 / hz)
}

async fn count_nodes(store: &std::sync::Arc<dyn KvStore>) -> (usize, HashSet<i64>) {
    let mut opts = RangeOptions {
        limit: Some(200),
        ..RangeOptions::default()
    };
    let (mut n, mut leases) = (0, HashSet::new());
    loop {
        let page = store
            .range(&NodeKey::prefix(), opts.clone())
            .await
            .expect("range");
        n += page.kvs.len();
        leases.extend(page.kvs.iter().map(|kv| kv.lease));
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => opts.start_after = Some(last.key.clone()),
            _ => return (n, leases),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_simulated_nodes() {
    let (etcd_server, store) = etcd().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = profile(dir.path());
    let args: Vec<String> = [
        "--etcd-endpoints",
        &etcd_server.endpoint(),
        "--simulate",
        &NODES.to_string(),
        "--profile",
        &profile.display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--lease-ttl-seconds",
        &TTL_SECONDS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let started = Instant::now();
    // Returns once every node is registered (the addresses are printed after that).
    let sim = AgentProcess::spawn(&args, &dir.path().join("sim.log"));
    let registration = started.elapsed();
    let (rss0, _, cpu0) = usage(sim.pid());

    let (nodes, leases) = count_nodes(&store).await;
    assert_eq!(nodes, NODES);
    assert_eq!(leases.len(), NODES, "each node under its own lease");
    assert!(!leases.contains(&0));

    // Steady state: two keep-alive rounds (every TTL/3).
    let window = Duration::from_secs(2 * TTL_SECONDS / 3 + 1);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let (rss1, hwm, cpu1) = usage(sim.pid());
    let steady = (cpu1 - cpu0) / t.elapsed().as_secs_f64() * 100.0;
    let (still, _) = count_nodes(&store).await;
    assert_eq!(still, NODES, "every lease kept alive");

    // Allocations on simulated nodes "run" and report Running; deleted, their status goes.
    let w = training("sim-job", vec!["true".into()], 5);
    put_workload(&store, &w).await;
    let names: Vec<String> = {
        let page = store
            .range(
                &NodeKey::prefix(),
                RangeOptions {
                    limit: Some(50),
                    ..RangeOptions::default()
                },
            )
            .await
            .expect("range");
        page.kvs
            .iter()
            .map(|kv| NodeKey::parse(&kv.key).expect("key").name)
            .collect()
    };
    let allocs: Vec<Allocation> = names
        .iter()
        .enumerate()
        .map(|(i, n)| allocation(&w, i as u32, n))
        .collect();
    for a in &allocs {
        put_allocation(&store, a).await;
    }
    for a in &allocs {
        let s = wait_status(&store, a, Duration::from_secs(20), "Running", |s| {
            s.phase == ReplicaPhase::Running
        })
        .await;
        assert_eq!(s.node, a.node);
    }
    let text = scrape(sim.metrics.expect("metrics")).await;
    assert_eq!(
        metric(&text, "universal_agent_simulated_nodes"),
        Some(NODES as f64)
    );
    assert_eq!(
        metric(&text, "universal_agent_simulated_replicas"),
        Some(allocs.len() as f64)
    );
    for a in &allocs {
        delete_allocation(&store, a).await;
    }
    for a in &allocs {
        eventually(Duration::from_secs(20), "status removed", || async {
            status(&store, a).await.is_none().then_some(())
        })
        .await;
    }
    let node_bytes = store
        .get(&NodeKey::new(names[0].as_str()).expect("key").format())
        .await
        .expect("get")
        .map(|kv| kv.value.len())
        .unwrap_or(0);
    let _ = codec::encode(&w);
    println!(
        "simulated {NODES} nodes ({}): registered in {:.1} s using {:.1} CPU-s; RSS {:.1} MiB after \
         registration, {:.1} MiB steady (peak {:.1} MiB); steady-state CPU {:.1}% of one core \
         (lease TTL {TTL_SECONDS} s, one keep-alive per node every {} s); {node_bytes} bytes per node key",
        profile.file_name().and_then(|n| n.to_str()).unwrap_or("profile"),
        registration.as_secs_f64(),
        cpu0,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        hwm as f64 / 1024.0,
        steady,
        TTL_SECONDS / 3,
    );
    assert!(hwm < 512 * 1024, "peak RSS {hwm} KiB");
    assert!(sim.terminate().success());
}
