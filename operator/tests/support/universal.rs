//! Universal for the operator tests: real etcd, a real `uni-scheduler` process secured as a
//! cluster runs it (`uni-scheduler init`: TLS, bearer tokens, roles), and simulated agents:
//! nodes registered in etcd as agents register them, and a task that reports every
//! allocated replica as started the way an agent would.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use uni_core::client::{read_token, AuthChannel, Target};
use uni_core::model::{
    AcceleratorDevice, Allocation, Node, NodeStatus, ObjectMeta, ReplicaPhase, ReplicaStatus,
    ResourceAmounts, UnixMillis,
};
use uni_core::store::keys::{AllocationKey, NodeKey, StatusKey, TypedKey};
use uni_core::store::{codec, KvStore, RangeOptions};
use uni_core::testing::EtcdServer;
use uni_core::tls::client::ClientTls;
use uni_proto::v1 as pb;
use uni_proto::v1::queue_service_client::QueueServiceClient;
use uni_proto::v1::workload_service_client::WorkloadServiceClient;

use super::bins::scheduler_bin;
use super::wait::DEADLINE;

const GIB: u64 = 1 << 30;

/// Names of the simulated nodes.
pub const NODES: &[&str] = &["sim-cpu-a", "sim-cpu-b", "sim-gpu-a"];

pub struct Universal {
    pub etcd: EtcdServer,
    pub store: Arc<dyn KvStore>,
    scheduler: Child,
    /// `https://127.0.0.1:PORT` of the scheduler's API.
    pub api: String,
    /// What `uni-scheduler init` wrote: the CA, the admin token, the scheduler's config.
    pub pki: tempfile::TempDir,
    target: Target,
    agent: JoinHandle<()>,
}

impl Universal {
    pub async fn start() -> Self {
        let etcd = EtcdServer::start().await.expect("etcd for universal");
        let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("connect to etcd"));
        for n in [
            node(NODES[0], 16, 64, 0, "", 0),
            node(NODES[1], 16, 64, 0, "", 0),
            node(NODES[2], 32, 256, 4, "NVIDIA A100-SXM4-80GB", 80),
        ] {
            let key = NodeKey::new(n.meta.name.clone())
                .expect("node key")
                .format();
            store
                .put(&key, codec::encode(&n).expect("encode node"), 0)
                .await
                .expect("register node");
        }
        let bin = tokio::task::spawn_blocking(scheduler_bin)
            .await
            .expect("build uni-scheduler");
        let pki = tempfile::tempdir().expect("pki dir");
        let init = std::process::Command::new(&bin)
            .args(["init", "--no-context", "--dir"])
            .arg(pki.path())
            .stdout(Stdio::null())
            .status()
            .expect("run uni-scheduler init");
        assert!(init.success(), "uni-scheduler init failed: {init}");
        let mut scheduler = Command::new(bin)
            .arg("--config")
            .arg(pki.path().join("scheduler.yaml"))
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--gateway-listen", "127.0.0.1:0"])
            .args(["--identity", "test-scheduler"])
            .env(
                "RUST_LOG",
                std::env::var("TEST_SCHEDULER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start uni-scheduler");
        let stdout = scheduler.stdout.take().expect("scheduler stdout");
        let mut lines = BufReader::new(stdout).lines();
        let api = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("api listening on ") {
                    return format!("https://{a}");
                }
            }
            panic!("uni-scheduler exited before printing its address");
        })
        .await
        .expect("uni-scheduler printed its address");
        // Keep draining stdout so the scheduler never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let agent = tokio::spawn(simulated_agents(store.clone()));
        let target = Target {
            server: api.clone(),
            tls: Some(
                ClientTls::from_files(Some(&pki.path().join("ca.crt")), None, None)
                    .expect("the cluster CA"),
            ),
            token: Some(read_token(&pki.path().join("admin.token")).expect("admin token")),
            ..Target::default()
        };
        Self {
            etcd,
            store,
            scheduler,
            api,
            pki,
            target,
            agent,
        }
    }

    /// The cluster CA and the admin's token file, as the operator is given them.
    pub fn credentials(&self) -> (PathBuf, PathBuf) {
        (
            self.pki.path().join("ca.crt"),
            self.pki.path().join("admin.token"),
        )
    }

    async fn channel(&self) -> AuthChannel {
        self.target
            .connect()
            .await
            .expect("connect to uni-scheduler")
    }

    pub async fn workloads(&self) -> WorkloadServiceClient<AuthChannel> {
        WorkloadServiceClient::new(self.channel().await)
    }

    pub async fn queues(&self) -> QueueServiceClient<AuthChannel> {
        QueueServiceClient::new(self.channel().await)
    }

    /// The workload, or None when it does not exist.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<pb::Workload>, String> {
        let r = self
            .workloads()
            .await
            .get_workload(pb::GetWorkloadRequest {
                namespace: namespace.into(),
                name: name.into(),
            })
            .await;
        match r {
            Ok(w) => Ok(Some(w.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(s.to_string()),
        }
    }

    /// Every workload in `namespace`.
    pub async fn list(&self, namespace: &str) -> Vec<pb::Workload> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .workloads()
                .await
                .list_workloads(pb::ListWorkloadsRequest {
                    namespace: namespace.into(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .expect("list workloads")
                .into_inner();
            out.extend(page.workloads);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Every allocation in the store.
    pub async fn allocations(&self) -> Vec<Allocation> {
        let all = self
            .store
            .range(&AllocationKey::prefix(), RangeOptions::default())
            .await
            .expect("range allocations");
        all.kvs
            .iter()
            .map(|kv| codec::decode(&kv.key, &kv.value).expect("allocation"))
            .collect()
    }
}

impl Drop for Universal {
    fn drop(&mut self) {
        self.agent.abort();
        let _ = self.scheduler.start_kill();
    }
}

/// What an agent would do for every replica allocated to its node: start it and report it
/// ready (a training worker reports Running). Driven by a watch on the allocations.
async fn simulated_agents(store: Arc<dyn KvStore>) {
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        let Ok(now) = store
            .range(&AllocationKey::prefix(), RangeOptions::default())
            .await
        else {
            return;
        };
        for kv in &now.kvs {
            let Ok(a) = codec::decode::<Allocation>(&kv.key, &kv.value) else {
                continue;
            };
            if reported.insert(a.id.clone()) {
                let status = ReplicaStatus {
                    allocation_id: a.id.clone(),
                    node: a.node.clone(),
                    phase: ReplicaPhase::Ready,
                    updated: UnixMillis::now(),
                    ..ReplicaStatus::default()
                };
                let Ok(key) = StatusKey::new(a.namespace.clone(), a.workload.clone(), a.replica)
                else {
                    continue;
                };
                let Ok(value) = codec::encode(&status) else {
                    continue;
                };
                if store.put(&key.format(), value, 0).await.is_err() {
                    return;
                }
            }
        }
        let Ok(mut watch) = store
            .watch(&AllocationKey::prefix(), now.revision + 1)
            .await
        else {
            return;
        };
        if watch.next().await.is_none() {
            return;
        }
    }
}

fn node(name: &str, cpus: u64, memory_gib: u64, gpus: u32, model: &str, gpu_gib: u64) -> Node {
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
    status.inventory.accelerators = (0..gpus)
        .map(|i| AcceleratorDevice {
            index: i,
            uuid: format!("GPU-{name}-{i}"),
            model: model.to_string(),
            memory_bytes: gpu_gib * GIB,
            healthy: true,
            ..AcceleratorDevice::default()
        })
        .collect();
    status.inventory.memory_bytes = memory_gib * GIB;
    Node {
        meta: ObjectMeta::cluster(name),
        status,
        ..Node::default()
    }
}
