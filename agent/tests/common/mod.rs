//! Shared test support: real etcd, agents (in this process or as `uni-agent` processes),
//! workloads and allocations written as the API and the scheduler would, and waiting on
//! conditions with deadlines (never fixed sleeps).
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use uni_agent::runtime::{ReplicaDir, ReplicaState};
use uni_agent::{Agent, AgentConfig, RunningAgent, RuntimeOptions, ShimMode};
use uni_core::model::{
    AcceleratorDevice, Allocation, CpuInfo, EnvVar, InferenceServiceSpec, Inventory, Node,
    ObjectMeta, Probe, ProbeAction, ReplicaPhase, ReplicaStatus, ReplicaTemplate, TrainingJobSpec,
    Workload, WorkloadSpec,
};
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore};
use uni_core::testing::EtcdServer;

/// How often a condition is checked again while waiting for it.
pub const POLL: Duration = Duration::from_millis(50);
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_uni-agent");
pub const NS: &str = "team-a";

/// Polls `check` until it returns `Some`, failing with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

pub async fn etcd() -> (EtcdServer, Arc<dyn KvStore>) {
    let server = EtcdServer::start().await.expect("etcd starts");
    let store: Arc<dyn KvStore> = Arc::new(server.store().await.expect("etcd client"));
    (server, store)
}

/// A small fixed inventory: tests do not depend on this machine's hardware.
pub fn inventory(accelerators: u32) -> Inventory {
    Inventory {
        hostname: "test".into(),
        cpu: CpuInfo {
            model: "Test CPU".into(),
            sockets: 1,
            cores: 8,
            threads: 8,
            ..CpuInfo::default()
        },
        memory_bytes: 16 << 30,
        accelerators: (0..accelerators)
            .map(|i| AcceleratorDevice {
                index: i,
                uuid: format!("GPU-test-{i}"),
                model: "NVIDIA H100 80GB HBM3".into(),
                memory_bytes: 80 << 30,
                healthy: true,
                ..AcceleratorDevice::default()
            })
            .collect(),
        ..Inventory::default()
    }
}

pub fn config(node: &str, data_dir: &Path) -> AgentConfig {
    let mut c = AgentConfig::new(node, data_dir);
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.address = Some("127.0.0.1".into());
    c.lease_ttl = Duration::from_secs(3);
    c.inventory = Some(inventory(2));
    c.shim = Some(ShimMode::Exec(PathBuf::from(AGENT_BIN)));
    c.runtime = RuntimeOptions {
        default_grace: Duration::from_secs(2),
        backoff_base: Duration::from_millis(500),
        on_shutdown: uni_agent::OnShutdown::Stop,
        ..RuntimeOptions::default()
    };
    c
}

pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub async fn start_agent(config: AgentConfig, store: &Arc<dyn KvStore>) -> RunningAgent {
    trace();
    Agent::new(config, store.clone())
        .start()
        .await
        .expect("agent starts")
}

/// An inference service running `script` with python3, probed over HTTP on its port.
pub fn inference(name: &str, script: &str, probe: Option<Probe>) -> Workload {
    Workload {
        meta: ObjectMeta {
            generation: 1,
            ..ObjectMeta::namespaced(NS, name)
        },
        spec: WorkloadSpec::Inference(InferenceServiceSpec {
            template: ReplicaTemplate {
                command: vec!["python3".into(), "-u".into(), "-c".into(), script.into()],
                ..ReplicaTemplate::default()
            },
            readiness_probe: probe,
            ..InferenceServiceSpec::default()
        }),
        ..Workload::default()
    }
}

/// A replica answering 200 to every GET on its `PORT` (what `http_probe` checks).
pub const HTTP_SERVER: &str = r#"
import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

pub fn http_probe() -> Probe {
    Probe {
        action: ProbeAction::HttpGet {
            path: "/healthz".into(),
            port: 0,
        },
        period_seconds: 1,
        failure_threshold: 1,
        ..Probe::default()
    }
}

/// A training job running `command`.
pub fn training(name: &str, command: Vec<String>, grace_seconds: u32) -> Workload {
    Workload {
        meta: ObjectMeta {
            generation: 1,
            ..ObjectMeta::namespaced(NS, name)
        },
        spec: WorkloadSpec::Training(TrainingJobSpec {
            template: ReplicaTemplate {
                command,
                ..ReplicaTemplate::default()
            },
            grace_period_seconds: grace_seconds,
            ..TrainingJobSpec::default()
        }),
        ..Workload::default()
    }
}

pub fn allocation(w: &Workload, replica: u32, node: &str) -> Allocation {
    Allocation {
        id: format!(
            "{}.{}.{replica}.t{}",
            w.meta.namespace,
            w.meta.name,
            std::process::id()
        ),
        namespace: w.meta.namespace.clone(),
        workload: w.meta.name.clone(),
        replica,
        node: node.into(),
        compute_milli: 500,
        memory_bytes: 256 << 20,
        port: free_port(),
        generation: 1,
        ..Allocation::default()
    }
}

pub fn env(pairs: &[(&str, String)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(k, v)| EnvVar::new(*k, v.clone()))
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub async fn put_workload(store: &Arc<dyn KvStore>, w: &Workload) {
    let key = WorkloadKey::new(w.meta.namespace.as_str(), w.meta.name.as_str())
        .expect("key")
        .format();
    store
        .put(&key, codec::encode(w).expect("encode"), 0)
        .await
        .expect("put workload");
}

pub async fn put_allocation(store: &Arc<dyn KvStore>, a: &Allocation) {
    let key = AllocationKey::new(a.node.as_str(), a.id.as_str())
        .expect("key")
        .format();
    store
        .put(&key, codec::encode(a).expect("encode"), 0)
        .await
        .expect("put allocation");
}

pub async fn delete_allocation(store: &Arc<dyn KvStore>, a: &Allocation) {
    let key = AllocationKey::new(a.node.as_str(), a.id.as_str())
        .expect("key")
        .format();
    store.delete(&key).await.expect("delete allocation");
}

pub fn status_key(a: &Allocation) -> String {
    StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)
        .expect("key")
        .format()
}

pub async fn status(store: &Arc<dyn KvStore>, a: &Allocation) -> Option<ReplicaStatus> {
    let key = status_key(a);
    let kv = store.get(&key).await.ok()??;
    codec::decode::<ReplicaStatus>(&key, &kv.value).ok()
}

/// Waits until the replica's status (for this allocation) satisfies `pred`.
pub async fn wait_status(
    store: &Arc<dyn KvStore>,
    a: &Allocation,
    deadline: Duration,
    what: &str,
    pred: impl Fn(&ReplicaStatus) -> bool,
) -> ReplicaStatus {
    let end = Instant::now() + deadline;
    loop {
        let s = status(store, a).await;
        if let Some(s) = s.as_ref().filter(|s| s.allocation_id == a.id && pred(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}; last status {s:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

pub async fn node(store: &Arc<dyn KvStore>, name: &str) -> Option<(Node, i64)> {
    let key = NodeKey::new(name).expect("key").format();
    let kv = store.get(&key).await.ok()??;
    Some((codec::decode::<Node>(&key, &kv.value).ok()?, kv.lease))
}

/// The replica's persisted state (pid and start time of the current run).
pub fn state(data_dir: &Path, a: &Allocation) -> Option<ReplicaState> {
    ReplicaDir::new(&data_dir.join("replicas"), &a.id)?
        .load()
        .ok()?
}

pub fn pid_of(data_dir: &Path, a: &Allocation) -> Option<i32> {
    state(data_dir, a)?.launched.map(|l| l.pid)
}

/// Live processes whose environment says they belong to allocation `id`.
pub fn processes_of(id: &str) -> Vec<i32> {
    let needle = format!("UNIVERSAL_ALLOCATION_ID={id}");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .map(|s| {
                            s.rsplit(')')
                                .next()
                                .is_some_and(|r| r.trim_start().starts_with('Z'))
                        })
                        .unwrap_or(true);
                    !zombie
                        && std::fs::read(format!("/proc/{pid}/environ"))
                            .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                            .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `pids` with their parent and command line, for failure messages.
pub fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)
                        .map(String::from)
                })
                .unwrap_or_default();
            format!("{pid} (parent {ppid}): {}", cmd.trim())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory arguments.
    unsafe { libc::kill(pid, signal) };
}

/// Kills every process of `ids` (cleanup after a failed test).
pub fn kill_all(ids: &[&str]) {
    for id in ids {
        for pid in processes_of(id) {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Kills the processes of these allocations when dropped, so a failed test leaves none.
pub struct Guard(pub Vec<String>);

impl Guard {
    pub fn of(allocs: &[&Allocation]) -> Self {
        Self(allocs.iter().map(|a| a.id.clone()).collect())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let ids: Vec<&str> = self.0.iter().map(String::as_str).collect();
        kill_all(&ids);
    }
}

/// A `uni-agent` process; killed (SIGKILL) when dropped.
pub struct AgentProcess {
    pub child: Child,
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub stdout_rest: std::thread::JoinHandle<Vec<String>>,
}

impl AgentProcess {
    /// Starts `uni-agent ARGS` and waits for `agent listening on ADDR` (and, when printed
    /// before it, `metrics listening on`).
    pub fn spawn(args: &[String], log: &Path) -> Self {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(AGENT_BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("uni-agent starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut grpc = None;
        let mut metrics = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(a) = line.strip_prefix("agent listening on ") {
                grpc = a.trim().parse().ok();
            }
            if let Some(a) = line.strip_prefix("metrics listening on ") {
                metrics = a.trim().parse().ok();
                break;
            }
        }
        let grpc = grpc.unwrap_or_else(|| {
            panic!(
                "uni-agent did not print its address; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
        let stdout_rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Self {
            child,
            grpc,
            metrics,
            stdout_rest,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        kill(self.pid(), libc::SIGTERM);
        self.child.wait().expect("wait")
    }

    /// SIGKILL (a crash), then waits.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent_args(node: &str, etcd: &str, data_dir: &Path) -> Vec<String> {
    [
        "--etcd-endpoints",
        etcd,
        "--node-name",
        node,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--address",
        "127.0.0.1",
        "--data-dir",
        &data_dir.display().to_string(),
        "--lease-ttl-seconds",
        "3",
        "--no-nvml",
        "--grace-period-seconds",
        "2",
        "--backoff-seconds",
        "0.5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// GET `/metrics`.
pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// The value of a metric line starting with `prefix` (name and labels).
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Stores `w` and its replica 0 on `node`, then waits until the replica reports `phase`;
/// the guard kills its processes when the test ends.
pub async fn run_replica(
    store: &Arc<dyn KvStore>,
    w: &Workload,
    node: &str,
    phase: ReplicaPhase,
) -> (Allocation, Guard) {
    put_workload(store, w).await;
    let a = allocation(w, 0, node);
    let guard = Guard::of(&[&a]);
    put_allocation(store, &a).await;
    wait_status(
        store,
        &a,
        Duration::from_secs(30),
        &format!("{phase:?}"),
        |s| s.phase == phase,
    )
    .await;
    (a, guard)
}
