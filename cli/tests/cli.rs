//! `unictl` against a real control plane, on etcd and on the embedded store: apply is
//! idempotent, get/describe/scale/delete/cordon work, bad manifests change nothing.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use uni_core::catalog::Catalog;
use uni_core::model::{Node, NodeStatus, ObjectMeta, ResourceAmounts};
use uni_core::store::keys::{NodeKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, EmbeddedStore, KvStore, RangeOptions};
use uni_core::testing::EtcdServer;
use uni_scheduler::config::Config;
use uni_scheduler::control_plane::ControlPlane;
use uni_scheduler::init::{init, InitOptions, Initialized};

const WEB: &str = "apiVersion: universal/v1
kind: InferenceService
metadata:
  name: web
  labels: {app: web}
spec:
  template:
    command: [python3, -m, http.server]
    resources: {compute: 500m, memory: 256Mi}
  replicas: {min: 1, max: 4, desired: 2}
---
apiVersion: universal/v1
kind: Queue
metadata:
  name: research
spec:
  priority: 100
  weight: 2
";

const TIGHT: &str = "apiVersion: universal/v1
kind: Queue
metadata:
  name: tight
spec:
  max: {compute: 100m}
---
apiVersion: universal/v1
kind: TrainingJob
metadata:
  name: squeezed
spec:
  queue: tight
  template:
    command: [\"true\"]
    resources: {compute: 500m, memory: 64Mi}
  workers: {min: 1, max: 1}
";

struct Cluster {
    store: Arc<dyn KvStore>,
    plane: ControlPlane,
    dir: tempfile::TempDir,
}

/// A cluster CA and admin token for the control plane; unictl uses them through a context.
fn secure(dir: &std::path::Path) -> Initialized {
    init(&InitOptions {
        dir: dir.join("pki"),
        server_names: vec![],
        server_url: String::new(),
        context: None,
    })
    .unwrap()
}

async fn start(store: Arc<dyn KvStore>) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let pki = secure(dir.path());
    let config = Config {
        etcd_endpoints: vec![],
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        gateway_url: String::new(),
        identity: "test".into(),
        lease_ttl: Duration::from_secs(2),
        node_grace: Duration::from_secs(2),
        catalog: None,
        max_commits_in_flight: 4,
        compaction_interval: std::time::Duration::from_secs(300),
        event_ttl: std::time::Duration::from_secs(3600),
        finished_ttl: None,
        starvation_after: std::time::Duration::from_secs(600),
        elastic_window: std::time::Duration::from_secs(60),
        max_watches: 10_000,
        dev: false,
        data_dir: std::path::PathBuf::new(),
        security: pki.security(),
    };
    let catalog = Arc::new(Catalog::builtin().unwrap());
    let plane = ControlPlane::start(store.clone(), catalog, &config)
        .await
        .unwrap();
    for name in ["cpu-a", "cpu-b"] {
        let capacity = ResourceAmounts {
            compute_milli: 8000,
            memory_bytes: 32 << 30,
            ..ResourceAmounts::default()
        };
        let node = Node {
            meta: ObjectMeta::cluster(name),
            status: NodeStatus {
                capacity,
                allocatable: capacity,
                ready: true,
                ..NodeStatus::default()
            },
            ..Node::default()
        };
        let key = NodeKey::new(name).unwrap().format();
        store
            .put(&key, codec::encode(&node).unwrap(), 0)
            .await
            .unwrap();
    }
    let server = format!("https://{}", plane.api_addr);
    pki.write_context_at(&dir.path().join("config.yaml"), "test", &server)
        .unwrap();
    Cluster { store, plane, dir }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cluster {
    /// Runs unictl (a blocking child process) off the async runtime.
    async fn unictl(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unictl"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("UNICTL_CONFIG", self.dir.path().join("config.yaml"))
            .env_remove("UNIVERSAL_SERVER");
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    async fn stored_workloads(&self) -> usize {
        self.store
            .range(&WorkloadKey::prefix(), RangeOptions::default())
            .await
            .unwrap()
            .kvs
            .len()
    }
}

async fn exercise(c: Cluster) {
    let f = c.write("web.yaml", WEB);
    let out = c.unictl(&["apply", "-f", &f]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "inferenceservice/web created\nqueue/research created\n"
    );
    let out = c.unictl(&["apply", "-f", &f]).await;
    assert_eq!(
        out.stdout,
        "inferenceservice/web unchanged\nqueue/research unchanged\n"
    );
    let changed = c.write("web2.yaml", &WEB.replace("desired: 2", "desired: 3"));
    let out = c.unictl(&["apply", "-f", &changed]).await;
    assert_eq!(
        out.stdout,
        "inferenceservice/web configured\nqueue/research unchanged\n"
    );

    let out = c.unictl(&["get", "workloads"]).await;
    assert!(out.ok, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("NAME   KIND               PHASE"));
    assert!(lines
        .next()
        .unwrap()
        .starts_with("web    InferenceService   "));

    // Listing inference services shows where the gateway serves each.
    let endpoint = format!("https://{}/default/web/", c.plane.gateway_addr);
    let out = c.unictl(&["get", "isvc"]).await;
    let mut lines = out.stdout.lines();
    assert!(lines.next().unwrap().contains("ENDPOINT"), "{}", out.stdout);
    assert!(lines.next().unwrap().ends_with(&endpoint), "{}", out.stdout);

    let out = c.unictl(&["get", "isvc", "web", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["kind"], "InferenceService");
    assert_eq!(v["spec"]["replicas"]["desired"], 3);
    let out = c
        .unictl(&["get", "workloads", "-l", "app=other", "-o", "name"])
        .await;
    assert_eq!(out.stdout, "");
    let out = c
        .unictl(&["get", "workloads", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(out.stdout, "inferenceservice/web\n");

    let out = c
        .unictl(&["scale", "workload/web", "--replicas", "1"])
        .await;
    assert_eq!(out.stdout, "inferenceservice/web scaled\n");
    let out = c.unictl(&["describe", "workload", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("Replicas:     1 desired"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("Endpoint:     {endpoint}")),
        "{}",
        out.stdout
    );

    // A new command is a new revision; history lists both and undo goes back.
    let v2 = c.write(
        "web-v2.yaml",
        &WEB.replace("http.server]", "http.server, '8081']"),
    );
    let out = c.unictl(&["apply", "-f", &v2]).await;
    assert!(out.ok, "{}", out.stderr);
    let mut history = String::new();
    for _ in 0..100 {
        history = c.unictl(&["rollout", "history", "web"]).await.stdout;
        if history.contains("2 (current)") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(history.starts_with("REVISION"), "{history}");
    assert!(
        history.contains("2 (current)") && history.contains("8081"),
        "{history}"
    );
    let out = c.unictl(&["rollout", "undo", "web"]).await;
    assert_eq!(
        out.stdout, "inferenceservice/web rolled back\n",
        "{}",
        out.stderr
    );
    let out = c.unictl(&["rollout", "status", "web", "--no-wait"]).await;
    assert!(
        out.ok && out.stdout.contains("\"web\""),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let out = c
        .unictl(&["rollout", "undo", "web", "--to-revision", "7"])
        .await;
    assert!(
        !out.ok && out.stderr.contains("to_revision"),
        "{}",
        out.stderr
    );

    // A queue too small for its workload: describe says why the workload waits.
    let tight = c.write("tight.yaml", TIGHT);
    let out = c.unictl(&["apply", "-f", &tight]).await;
    assert!(out.ok, "{}", out.stderr);
    let mut described = String::new();
    for _ in 0..100 {
        described = c.unictl(&["describe", "queue", "tight"]).await.stdout;
        if described.contains("over its maximum quota") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        described.contains("Max:              compute=100m"),
        "{described}"
    );
    assert!(
        described.contains("default/squeezed")
            && described.contains("queue tight: ")
            && described.contains("over its maximum quota"),
        "{described}"
    );
    let out = c.unictl(&["delete", "workload", "squeezed"]).await;
    assert!(out.ok, "{}", out.stderr);

    let out = c.unictl(&["get", "nodes"]).await;
    assert!(out.stdout.contains("cpu-a   Ready"), "{}", out.stdout);
    let out = c.unictl(&["cordon", "cpu-a"]).await;
    assert_eq!(out.stdout, "node/cpu-a cordoned\n");
    let out = c.unictl(&["get", "nodes", "cpu-a"]).await;
    assert!(
        out.stdout.contains("Ready,SchedulingDisabled"),
        "{}",
        out.stdout
    );
    c.unictl(&["uncordon", "cpu-a"]).await;

    // A bad manifest: every problem with its line, a non-zero exit, and nothing written.
    let before = c.stored_workloads().await;
    let bad = c.write(
        "bad.yaml",
        &WEB.replace("name: web", "name: web2")
            .replace("memory: 256Mi", "memory: 12Qi")
            .replace("kind: Queue", "kind: Pod"),
    );
    let out = c.unictl(&["apply", "-f", &bad]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains(&format!("{bad}:9: ")), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{bad}:13: kind: unknown kind \"Pod\"")),
        "{}",
        out.stderr
    );
    assert_eq!(c.stored_workloads().await, before);

    let out = c.unictl(&["delete", "workload", "web"]).await;
    assert_eq!(out.stdout, "workload/web deleted\n");
    let out = c.unictl(&["delete", "workload", "web"]).await;
    assert!(
        !out.ok && out.stderr.contains("not found"),
        "{}",
        out.stderr
    );
    assert_eq!(c.stored_workloads().await, 0);
    c.plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unictl_on_etcd() {
    let etcd = EtcdServer::start().await.unwrap();
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.unwrap());
    exercise(start(store).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unictl_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn KvStore> = Arc::new(
        EmbeddedStore::open(dir.path().join("s.redb"))
            .await
            .unwrap(),
    );
    exercise(start(store).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_unictl"))
        .args(["--server", "http://127.0.0.1:1", "get", "nodes"])
        .env("UNICTL_CONFIG", dir.path().join("c.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the Universal API at http://127.0.0.1:1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_manifests_are_refused_by_line_and_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn KvStore> = Arc::new(
        EmbeddedStore::open(dir.path().join("s.redb"))
            .await
            .unwrap(),
    );
    let c = start(store).await;
    let (mut applied, mut refused) = (0, 0);
    for (i, v) in uni_core::testing::hostile::samples(40).iter().enumerate() {
        let manifest = uni_core::testing::hostile::as_manifest(v, &format!("case-{i}"));
        let file = c.write(
            &format!("case-{i}.yaml"),
            &serde_yaml::to_string(&manifest).unwrap(),
        );
        let before = c.stored_workloads().await;
        let out = c.unictl(&["apply", "-f", &file]).await;
        assert!(
            !out.stderr.contains("panicked"),
            "unictl panicked on {file}: {}",
            out.stderr
        );
        let after = c.stored_workloads().await;
        if out.ok {
            applied += 1;
            assert_eq!(after, before + 1, "{}", out.stdout);
        } else {
            refused += 1;
            assert_eq!(after, before, "a refused manifest wrote something");
            // `FILE:LINE: field: problem` (short, whatever the value), or the API's refusal
            // naming the field.
            assert!(out.stderr.len() < 8192, "{}", out.stderr.len());
            assert!(
                out.stderr.contains(&format!("case-{i}.yaml:")) || out.stderr.contains("spec."),
                "the refusal names no line or field: {}",
                out.stderr
            );
        }
    }
    println!("{applied} applied, {refused} refused");
    assert!(refused > 0);
    c.plane.shutdown().await;
}
