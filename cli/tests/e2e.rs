//! End to end, as a user would: a control plane and a real agent running real processes, on
//! etcd and on the embedded store; `unictl apply` the examples, the service answers HTTP, the
//! training job succeeds and its logs show the exchange, `scale` and `delete` take effect.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use uni_agent::agent::{Agent, AgentConfig};
use uni_agent::credentials::NodeCredentials;
use uni_core::catalog::Catalog;
use uni_core::store::RemoteStore;
use uni_core::store::{EmbeddedStore, KvStore};
use uni_core::testing::EtcdServer;
use uni_scheduler::config::Config;
use uni_scheduler::control_plane::ControlPlane;
use uni_scheduler::init::{init, InitOptions};

const WAIT: Duration = Duration::from_secs(90);
/// How often a condition is checked again while waiting for it.
const POLL: Duration = Duration::from_millis(200);

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    async fn unictl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unictl"));
        cmd.args(args)
            .env("UNICTL_CONFIG", self.dir.path().join("config.yaml"));
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The workload as JSON, from `unictl get -o json`.
    async fn json(&self, name: &str) -> serde_json::Value {
        let (_, out, _) = self.unictl(&["get", "workloads", name, "-o", "json"]).await;
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    }

    /// Polls `check` on the workload until it holds, within [`WAIT`].
    async fn wait(&self, name: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.json(name).await;
            if check(&v) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

fn ports(v: &serde_json::Value) -> Vec<u64> {
    v["status"]["replicas"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["port"].as_u64()).collect())
        .unwrap_or_default()
}

async fn http_ok(port: u64) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port as u16)).await else {
        return false;
    };
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
    buf.starts_with("HTTP/1.0 200")
}

async fn run(store: Arc<dyn KvStore>) {
    let dir = tempfile::tempdir().unwrap();
    // The agent's data directory holds the replicas' scratch directories, which replicas
    // (running as their namespace's user) reach by path: it must be searchable by others, as
    // /var/lib/universal is, not 0700 as a temporary directory is made.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pki = init(&InitOptions {
        dir: dir.path().join("pki"),
        server_names: vec![],
        server_url: String::new(),
        context: None,
    })
    .unwrap();
    let config = Config {
        etcd_endpoints: vec![],
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_url: String::new(),
        identity: "e2e".into(),
        lease_ttl: Duration::from_secs(2),
        node_grace: Duration::from_secs(5),
        catalog: None,
        max_commits_in_flight: 4,
        compaction_interval: std::time::Duration::from_secs(300),
        event_ttl: std::time::Duration::from_secs(3600),
        finished_ttl: None,
        starvation_after: std::time::Duration::from_secs(600),
        elastic_window: std::time::Duration::from_secs(60),
        max_watches: 10_000,
        dev: false,
        data_dir: dir.path().to_path_buf(),
        security: pki.security(),
    };
    let plane = ControlPlane::start(
        store.clone(),
        Arc::new(Catalog::builtin().unwrap()),
        &config,
    )
    .await
    .unwrap();
    let mut agent_config = AgentConfig::new("e2e-node", dir.path().join("agent"));
    agent_config.listen = "127.0.0.1:0".parse().unwrap();
    agent_config.address = Some("127.0.0.1".into());
    // The agent joins with the bootstrap token and reaches the store only through the
    // scheduler, as a node credential.
    let creds = NodeCredentials {
        server: format!("https://{}", plane.api_addr),
        ca: pki.ca.clone(),
        cert: dir.path().join("agent-pki/node.crt"),
        key: dir.path().join("agent-pki/node.key"),
        bootstrap_token_file: Some(pki.dir.join("bootstrap.token")),
        node: "e2e-node".into(),
    };
    creds.ensure().await.expect("the agent joins");
    // Its log service serves TLS with the node certificate, to the scheduler only.
    agent_config.tls = Some(uni_core::tls::server::TlsFiles {
        cert: creds.cert.clone(),
        key: creds.key.clone(),
        client_ca: Some(creds.ca.clone()),
    });
    let through_gateway: Arc<dyn KvStore> =
        Arc::new(RemoteStore::new(creds.connect().await.unwrap()));
    let agent = Agent::new(agent_config, through_gateway)
        .start()
        .await
        .unwrap();
    pki.write_context_at(
        &dir.path().join("config.yaml"),
        "e2e",
        &format!("https://{}", plane.api_addr),
    )
    .unwrap();
    let env = Env { dir };

    let ex = examples();
    let (ok, out, err) = env.unictl(&["apply", "-f", ex.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.contains("inferenceservice/hello created"), "{out}");

    // The service answers HTTP on the ports the agent gave its replicas.
    env.wait("hello", "2 replicas ready", |v| {
        v["status"]["replicas_ready"] == 2
    })
    .await;
    for port in ports(&env.json("hello").await) {
        assert!(
            http_ok(port).await,
            "replica on port {port} does not answer"
        );
    }

    // The training job's workers rendezvous, exchange ranks and succeed; logs show it.
    env.wait("pair", "pair to succeed", |v| {
        v["status"]["phase"] == "Succeeded"
    })
    .await;
    let (ok, logs, err) = env.unictl(&["logs", "pair"]).await;
    assert!(ok, "{err}");
    assert!(logs.contains("rank 0 received: rank 1"), "{logs}");
    assert!(logs.contains("rank 1 received: rank 0"), "{logs}");
    // The agent serves them to the scheduler alone: not to a node's certificate, not to a
    // caller without one.
    let agent_url = format!("https://{}", agent.grpc_addr());
    for identity in [Some((&creds.cert, &creds.key)), None] {
        // The agent's certificate names the node, not its address.
        let tls = uni_core::tls::client::ClientTls {
            domain: Some(uni_core::tls::node_server_name(&creds.node)),
            ..uni_core::tls::client::ClientTls::from_files(
                Some(&creds.ca),
                identity.map(|i| i.0.as_path()),
                identity.map(|i| i.1.as_path()),
            )
            .unwrap()
        };
        let ch = uni_core::tls::client::channel(&agent_url, Some(&tls))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let err = uni_proto::v1::log_service_client::LogServiceClient::new(ch)
            .stream_logs(uni_proto::v1::StreamLogsRequest {
                namespace: "default".into(),
                workload: "pair".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    }

    // The GPU service waits, saying why.
    let (_, describe, _) = env.unictl(&["describe", "workload", "llm"]).await;
    assert!(
        describe.contains("Reason:       Unschedulable"),
        "{describe}"
    );

    // Scale down: one replica left, the other's process is gone.
    let before = ports(&env.json("hello").await);
    let (ok, _, err) = env
        .unictl(&["scale", "workload/hello", "--replicas", "1"])
        .await;
    assert!(ok, "{err}");
    env.wait("hello", "1 replica", |v| ports(v).len() == 1)
        .await;
    let kept = ports(&env.json("hello").await);
    let gone: Vec<u64> = before.into_iter().filter(|p| !kept.contains(p)).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    for port in &gone {
        while http_ok(*port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "scaled-down replica still serves"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    // Delete: the last process stops.
    let (ok, _, err) = env.unictl(&["delete", "workload", "hello"]).await;
    assert!(ok, "{err}");
    for port in kept {
        while http_ok(port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "deleted replica still serves"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    agent.shutdown().await;
    plane.shutdown().await;
}

/// Both stores in one test, one after the other: the replicas of each listen on the same
/// host ports, which only one cluster at a time may hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_end_to_end_on_etcd_and_the_embedded_store() {
    let etcd = EtcdServer::start().await.unwrap();
    run(Arc::new(etcd.store().await.unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    run(Arc::new(
        EmbeddedStore::open(dir.path().join("s.redb"))
            .await
            .unwrap(),
    ))
    .await;
}
