//! Test harness for the control plane: real etcd, real `uni-scheduler` processes, and nodes
//! registered in etcd under leases exactly as agents register them.
#![allow(dead_code)]

pub mod agent;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uni_core::model::{
    AcceleratorDevice, Allocation, Node, NodeStatus, ObjectMeta, ResourceAmounts, Workload,
};
use uni_core::store::keys::{AllocationKey, NodeKey, TypedKey};
use uni_core::store::{codec, KeyValue, KvStore, RangeOptions};
use uni_proto::v1::workload_service_client::WorkloadServiceClient;

pub const GIB: u64 = 1 << 30;
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Scheduler {
    child: Child,
    pub api: String,
    pub metrics: String,
    /// The inference gateway, `http://ADDR`.
    pub gateway: String,
}

impl Scheduler {
    /// Starts a replica with short timings and waits until it prints its addresses.
    pub async fn start(etcd: &str, identity: &str) -> Scheduler {
        Self::start_with(etcd, identity, &[]).await
    }

    /// [`Scheduler::start`] with more flags.
    pub async fn start_with(etcd: &str, identity: &str, extra: &[&str]) -> Scheduler {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uni-scheduler"))
            .args(["--etcd-endpoints", etcd])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--gateway-listen", "127.0.0.1:0"])
            .args(["--identity", identity])
            // Loopback only; the security tests start their own secured replicas.
            .arg("--insecure")
            .args(["--lease-ttl-seconds", "2", "--node-grace-seconds", "2"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("TEST_SCHEDULER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start uni-scheduler");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut api, mut metrics, mut gateway) = (None, None, None);
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("api listening on ") {
                    api = Some(format!("http://{a}"));
                }
                if let Some(a) = line.strip_prefix("metrics listening on ") {
                    metrics = Some(format!("http://{a}"));
                }
                if let Some(a) = line.strip_prefix("gateway listening on ") {
                    gateway = Some(format!("http://{a}"));
                }
                if api.is_some() && metrics.is_some() && gateway.is_some() {
                    break;
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("scheduler did not print its addresses");
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Scheduler {
            child,
            api: api.expect("api address"),
            metrics: metrics.expect("metrics address"),
            gateway: gateway.expect("gateway address"),
        }
    }

    pub async fn client(&self) -> WorkloadServiceClient<tonic::transport::Channel> {
        WorkloadServiceClient::connect(self.api.clone())
            .await
            .expect("connect to scheduler")
    }

    /// Kills the process at once, as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("scheduler did not stop after SIGTERM")
            .expect("wait")
    }

    /// The Prometheus text this replica serves.
    pub async fn metrics_text(&self) -> String {
        let addr = self.metrics.trim_start_matches("http://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("metrics");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut body = String::new();
        stream.read_to_string(&mut body).await.expect("response");
        body
    }
}

/// Replicas of tests in one binary would take the same host ports (each cluster's node
/// numbers them from 30000): one real cluster at a time.
static HOST_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// etcd, a scheduler and a real agent running replicas on this machine.
pub struct RealCluster {
    _ports: tokio::sync::MutexGuard<'static, ()>,
    _etcd: uni_core::testing::EtcdServer,
    pub agent: agent::AgentProcess,
    _data: tempfile::TempDir,
    pub store: Arc<dyn KvStore>,
    pub s: Scheduler,
    /// etcd's endpoint, for more scheduler replicas.
    pub endpoint: String,
}

/// Starts a [`RealCluster`] whose agent's node is `node`.
pub async fn real_cluster(node: &str) -> RealCluster {
    let ports = HOST_PORTS.lock().await;
    let etcd = uni_core::testing::EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let s = Scheduler::start(&etcd.endpoint(), node).await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = agent::AgentProcess::start(&etcd.endpoint(), data.path(), node, "real=true");
    RealCluster {
        _ports: ports,
        endpoint: etcd.endpoint(),
        _etcd: etcd,
        agent,
        _data: data,
        store,
        s,
    }
}

/// Ends a Python script that defines handler `H`: serves it on `$PORT`, one thread per
/// request, with a backlog that a burst of clients and the probes do not overflow.
pub const PY_SERVE: &str = r#"
class S(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A plain HTTP/1.1 client for the gateway.
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A client for the gateway.
pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// GETs `url`: the status and body, or 502 with the client's error, or 504 after [`WAIT`].
pub async fn http_get(client: &HttpClient, url: &str) -> (http::StatusCode, String) {
    use http_body_util::BodyExt;
    let req = http::Request::get(url)
        .body(Default::default())
        .expect("request");
    match tokio::time::timeout(WAIT, client.request(req)).await {
        Ok(Ok(resp)) => {
            let code = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            let body = body.map_or_else(|e| e.to_string(), |b| String::from_utf8_lossy(&b).into());
            (code, body)
        }
        Ok(Err(e)) => (http::StatusCode::BAD_GATEWAY, e.to_string()),
        Err(_) => (
            http::StatusCode::GATEWAY_TIMEOUT,
            "no answer in time".into(),
        ),
    }
}

/// Polls `f` until it holds, for at most [`WAIT`] (for state only the API shows).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let run = async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Waits until at least `n` replicas of `default/name` report Ready.
pub async fn wait_ready(store: &Arc<dyn KvStore>, name: &str, n: usize) {
    use uni_core::model::{ReplicaPhase, ReplicaStatus};
    let prefix = uni_core::store::keys::StatusKey::workload_prefix("default", name);
    wait_for(
        store,
        &prefix,
        &format!("{n} ready replicas of {name}"),
        |kvs| {
            kvs.iter()
                .filter_map(|kv| codec::decode::<ReplicaStatus>(&kv.key, &kv.value).ok())
                .filter(|s| s.phase == ReplicaPhase::Ready)
                .count()
                >= n
        },
    )
    .await;
}

/// Clients calling `url` until stopped; returns every answer.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<(http::StatusCode, String)>>>,
}

impl Load {
    pub fn start(client: &HttpClient, url: &str, n: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..n)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.to_string(), stop.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        answers.push(http_get(&client, &url).await);
                    }
                    answers
                })
            })
            .collect();
        Self { stop, clients }
    }

    pub async fn stop(self) -> Vec<(http::StatusCode, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for c in self.clients {
            all.extend(c.await.expect("client"));
        }
        all
    }
}

/// `default/name` as the API of `s` shows it.
pub async fn get_workload(s: &Scheduler, name: &str) -> uni_proto::v1::Workload {
    s.client()
        .await
        .get_workload(uni_proto::v1::GetWorkloadRequest {
            namespace: "default".into(),
            name: name.into(),
        })
        .await
        .expect("get workload")
        .into_inner()
}

/// Submits `w` through the API of `s`.
pub async fn create(s: &Scheduler, w: &Workload) {
    s.client()
        .await
        .create_workload(uni_proto::v1::CreateWorkloadRequest {
            workload: Some(uni_proto::v1::Workload::from(w)),
            dry_run: false,
        })
        .await
        .expect("create workload");
}

pub fn workload(yaml: &str) -> Workload {
    serde_yaml::from_str(yaml).expect("workload yaml")
}

/// A service running `command` with `resources` (YAML flow mappings), `(min, max, desired)`
/// replicas and `extra` spec lines (indented for `inference:`).
fn service_with(
    name: &str,
    command: &str,
    resources: &str,
    (min, max, desired): (u32, u32, u32),
    extra: &str,
) -> Workload {
    workload(&format!(
        r#"
meta: {{name: {name}, namespace: default}}
spec:
  inference:
    template:
      command: {command}
      resources: {resources}
    replicas: {{min: {min}, max: {max}, desired: {desired}}}
{extra}"#
    ))
}

/// A service of `replicas` replicas running `command` with `resources`.
fn service(name: &str, replicas: u32, command: &str, resources: &str) -> Workload {
    service_with(name, command, resources, (1, replicas, replicas), "")
}

/// A small HTTP service running `argv`, ready once `/healthz` answers, with `replicas`
/// `(min, max, desired)` and `extra` spec lines.
pub fn http_service(name: &str, argv: &[&str], replicas: (u32, u32, u32), extra: &str) -> Workload {
    let command = serde_json::to_string(argv).expect("command");
    let probe = "    readiness_probe: {action: {http_get: {path: /healthz}}, period_seconds: 1}\n";
    service_with(
        name,
        &command,
        "{compute: 100m, memory: 64Mi}",
        replicas,
        &format!("{probe}{extra}"),
    )
}

pub fn inference(name: &str, replicas: u32, compute: &str) -> Workload {
    service(
        name,
        replicas,
        r#"["sleep", "3600"]"#,
        &format!(r#"{{compute: "{compute}", memory: 1Gi}}"#),
    )
}

/// A gang of `workers` of `gpus_each` devices (40 GiB each).
pub fn training(name: &str, workers: u32, gpus_each: u32) -> Workload {
    gang(name, workers, workers, gpus_each, 40, 500, false)
}

/// A training job of `min..=max` workers of `gpus_each` devices with `gib` GiB each.
pub fn gang(
    name: &str,
    min: u32,
    max: u32,
    gpus_each: u32,
    gib: u32,
    priority: i32,
    preemptible: bool,
) -> Workload {
    workload(&format!(
        r#"
meta: {{name: {name}, namespace: default}}
spec:
  training:
    template:
      command: ["python3", "train.py"]
      resources:
        compute: "1"
        memory: 1Gi
        accelerator: {{memory: {mem}Gi, min_devices: {gpus_each}, max_devices: {gpus_each}}}
    workers: {{min: {min}, max: {max}}}
    priority: {priority}
    preemptible: {preemptible}
"#,
        mem = gib * gpus_each
    ))
}

/// `replicas` replicas each asking for 20 GiB of a shared GPU.
pub fn fractional(name: &str, replicas: u32) -> Workload {
    service(
        name,
        replicas,
        r#"["serve"]"#,
        r#"{compute: "1", memory: 2Gi, accelerator: {memory: 20Gi, shareable: true}}"#,
    )
}

/// A node as an agent reports it: `cpus` cores, `memory_gib`, and `gpus` devices of `model`
/// with `gpu_gib` each.
pub fn node(name: &str, cpus: u64, memory_gib: u64, gpus: u32, model: &str, gpu_gib: u64) -> Node {
    let accelerators = (0..gpus)
        .map(|i| AcceleratorDevice {
            index: i,
            uuid: format!("GPU-{name}-{i}"),
            model: model.to_string(),
            memory_bytes: gpu_gib * GIB,
            healthy: true,
            ..AcceleratorDevice::default()
        })
        .collect();
    let capacity = ResourceAmounts {
        compute_milli: cpus * 1000,
        memory_bytes: memory_gib * GIB,
        device_milli: u64::from(gpus) * 1000,
        device_memory_bytes: u64::from(gpus) * gpu_gib * GIB,
    };
    let mut status = NodeStatus {
        capacity,
        allocatable: capacity,
        ready: true,
        address: "127.0.0.1".to_string(),
        ..NodeStatus::default()
    };
    status.inventory.accelerators = accelerators;
    status.inventory.memory_bytes = memory_gib * GIB;
    Node {
        meta: ObjectMeta::cluster(name),
        status,
        ..Node::default()
    }
}

/// Registers `node` under `lease`, as its agent would.
pub async fn register(store: &Arc<dyn KvStore>, node: &Node, lease: i64) {
    let key = NodeKey::new(node.meta.name.clone())
        .expect("node key")
        .format();
    store
        .put(&key, codec::encode(node).expect("encode"), lease)
        .await
        .expect("register node");
}

pub fn decode_allocations(kvs: &[KeyValue]) -> Vec<Allocation> {
    kvs.iter()
        .map(|kv| codec::decode(&kv.key, &kv.value).expect("allocation"))
        .collect()
}

pub async fn allocations(store: &Arc<dyn KvStore>) -> Vec<Allocation> {
    let all = store
        .range(&AllocationKey::prefix(), RangeOptions::default())
        .await
        .expect("range");
    decode_allocations(&all.kvs)
}

/// Waits, driven by a watch on `prefix`, until `check` holds for the keys under it.
pub async fn wait_for(
    store: &Arc<dyn KvStore>,
    prefix: &str,
    what: &str,
    mut check: impl FnMut(&[KeyValue]) -> bool,
) -> Vec<KeyValue> {
    let run = async {
        loop {
            let now = store
                .range(prefix, RangeOptions::default())
                .await
                .expect("range");
            if check(&now.kvs) {
                return now.kvs;
            }
            let mut watch = store.watch(prefix, now.revision + 1).await.expect("watch");
            // Any change under the prefix: look again.
            let _ = watch.next().await;
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The scheduler replicas' election key; its value names the leader.
pub const LEADER_KEY: &str = "/universal/v1/election/scheduler";

/// Waits until a replica leads (`identity` that one, `None` any).
pub async fn wait_leader(store: &Arc<dyn KvStore>, identity: Option<&str>) {
    wait_for(store, LEADER_KEY, "a leader", |kvs| {
        kvs.iter()
            .any(|kv| identity.is_none_or(|i| kv.value == i.as_bytes()))
    })
    .await;
}

/// Waits until the allocations under the prefix satisfy `check`.
pub async fn wait_allocations(
    store: &Arc<dyn KvStore>,
    what: &str,
    mut check: impl FnMut(&[Allocation]) -> bool,
) -> Vec<Allocation> {
    let kvs = wait_for(store, &AllocationKey::prefix(), what, |kvs| {
        check(&decode_allocations(kvs))
    })
    .await;
    decode_allocations(&kvs)
}

/// No device shared beyond one whole device, no node beyond its compute and memory.
pub fn assert_no_overcommit(nodes: &[Node], allocs: &[Allocation]) {
    use std::collections::HashMap;
    for n in nodes {
        let on: Vec<&Allocation> = allocs.iter().filter(|a| a.node == n.meta.name).collect();
        let compute: u64 = on.iter().map(|a| a.compute_milli).sum();
        let memory: u64 = on.iter().map(|a| a.memory_bytes).sum();
        assert!(
            compute <= n.status.allocatable.compute_milli,
            "{}: compute overcommitted",
            n.meta.name
        );
        assert!(
            memory <= n.status.allocatable.memory_bytes,
            "{}: memory overcommitted",
            n.meta.name
        );
        let mut per_device: HashMap<u32, u32> = HashMap::new();
        for d in on.iter().flat_map(|a| &a.devices) {
            *per_device.entry(d.index).or_default() += d.share_milli;
        }
        for (dev, share) in per_device {
            assert!(
                share <= 1000,
                "{} device {dev} double-booked: {share} milli",
                n.meta.name
            );
        }
    }
}
