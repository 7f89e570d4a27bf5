//! The autoscaler end to end: a real agent runs a Python service that takes 200 ms per
//! request; load through the gateway scales it, and an idle service with `min: 0` goes to
//! zero and comes back for the request that arrives.

mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use uni_core::model::{Event, ReplicaPhase, ReplicaStatus, Workload, WorkloadSpec};
use uni_core::store::keys::{EventKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore};
use uni_core::testing::EtcdServer;

use harness::agent::AgentProcess;
use harness::{create, http_service, wait_allocations, wait_for, Scheduler, WAIT};

/// Answers `/work` after 200 ms with its replica index.
const SERVER: &str = r#"
import os, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path != "/healthz":
            time.sleep(0.2)
        b = os.environ["UNIVERSAL_REPLICA"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
class S(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn service(name: &str, min: u32, max: u32, desired: u32) -> Workload {
    let scaling = "    autoscaling:
      metric: concurrency
      target: 2
      stable_window_seconds: 6
      panic_window_seconds: 2
      scale_down_delay_seconds: 3
";
    http_service(
        name,
        &["python3", "-c", SERVER],
        (min, max, desired),
        scaling,
    )
}

fn desired(w: &Workload) -> u32 {
    match &w.spec {
        WorkloadSpec::Inference(s) => s.replicas.desired,
        WorkloadSpec::Training(_) => 0,
    }
}

/// Waits until the stored spec of `name` asks for `n` replicas.
async fn desired_becomes(store: &Arc<dyn KvStore>, name: &str, n: u32) {
    let key = WorkloadKey::new("default", name).expect("key").format();
    wait_for(
        store,
        &key,
        &format!("{name} to want {n} replicas"),
        |kvs| {
            kvs.iter()
                .filter_map(|kv| codec::decode::<Workload>(&kv.key, &kv.value).ok())
                .any(|w| desired(&w) == n)
        },
    )
    .await;
}

/// Waits until `n` replicas of `name` are Ready.
async fn ready(store: &Arc<dyn KvStore>, name: &str, n: usize) {
    let prefix = StatusKey::workload_prefix("default", name);
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

/// The `Scaled` event of `name`, once it says `what`.
async fn scaled_event(store: &Arc<dyn KvStore>, name: &str, what: &str) -> String {
    let prefix = EventKey::namespace_prefix("default");
    let kvs = wait_for(
        store,
        &prefix,
        &format!("a Scaled event with {what:?}"),
        |kvs| {
            kvs.iter()
                .filter_map(|kv| codec::decode::<Event>(&kv.key, &kv.value).ok())
                .any(|e| {
                    e.involved.name == name && e.reason == "Scaled" && e.message.contains(what)
                })
        },
    )
    .await;
    kvs.iter()
        .filter_map(|kv| codec::decode::<Event>(&kv.key, &kv.value).ok())
        .find(|e| e.involved.name == name && e.reason == "Scaled")
        .map(|e| e.message)
        .unwrap_or_default()
}

async fn get(client: &Client<HttpConnector, Full<Bytes>>, url: &str) -> (StatusCode, String) {
    let req = Request::get(url).body(Full::default()).expect("request");
    match tokio::time::timeout(WAIT, client.request(req)).await {
        Ok(Ok(resp)) => {
            let code = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            let body = body.map_or_else(|e| e.to_string(), |b| String::from_utf8_lossy(&b).into());
            (code, body)
        }
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, e.to_string()),
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "no answer in time".into()),
    }
}

/// Replicas of both tests would take the same host ports (each cluster's node numbers them
/// from 30000): one test at a time.
static HOST_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    _ports: tokio::sync::MutexGuard<'static, ()>,
    _etcd: EtcdServer,
    _agent: AgentProcess,
    _data: tempfile::TempDir,
    store: Arc<dyn KvStore>,
    s: Scheduler,
}

async fn cluster() -> Cluster {
    let ports = HOST_PORTS.lock().await;
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let s = Scheduler::start(&etcd.endpoint(), "autoscale").await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = AgentProcess::start(&etcd.endpoint(), data.path(), "as-node", "as=real");
    Cluster {
        _ports: ports,
        _etcd: etcd,
        _agent: agent,
        _data: data,
        store,
        s,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_up_at_once_spreads_and_scales_back_after_the_delay() {
    let c = cluster().await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("burst", 1, 4, 1)).await;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/default/burst/work", s.gateway);
    ready(store, "burst", 1).await;
    let (code, body) = get(&client, &url).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Eight clients, each with one request outstanding at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push(get(&client, &url).await);
                }
                answers
            })
        })
        .collect();
    desired_becomes(store, "burst", 4).await;
    let message = scaled_event(store, "burst", "-> 4").await;
    assert!(
        message.contains("(burst"),
        "scaled up in panic mode: {message}"
    );
    // The new replicas take load as they become ready.
    ready(store, "burst", 4).await;
    let mut recent = BTreeSet::new();
    for _ in 0..16 {
        let (code, body) = get(&client, &url).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        recent.insert(body);
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for c in clients {
        for (code, body) in c.await.expect("client") {
            assert_eq!(code, StatusCode::OK, "a request under load failed: {body}");
            answered += 1;
        }
    }
    assert!(
        answered > 8,
        "the clients kept the load up ({answered} answers)"
    );
    assert!(
        recent.len() >= 3,
        "the load spreads over the replicas: {recent:?}"
    );

    // Idle: back to the minimum once the panic, the stable window and the delay pass, the
    // surplus replicas drained and stopped.
    desired_becomes(store, "burst", 1).await;
    wait_allocations(store, "the surplus replicas drained and removed", |all| {
        all.iter().filter(|a| a.workload == "burst").count() == 1
    })
    .await;
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains(r#"universal_autoscaler_scaled_total{direction="up"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"universal_autoscaler_desired_replicas{namespace="default",service="burst"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_goes_to_zero_and_a_request_brings_it_back() {
    let c = cluster().await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("cold", 0, 2, 1)).await;
    desired_becomes(store, "cold", 0).await;
    wait_allocations(store, "the idle replica removed", |all| {
        !all.iter().any(|a| a.workload == "cold")
    })
    .await;

    // Requests at zero are held, not refused, and every one is answered.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/default/cold/work", s.gateway);
    let held: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { get(&client, &url).await })
        })
        .collect();
    for h in held {
        let (code, body) = h.await.expect("request");
        assert_eq!(
            code,
            StatusCode::OK,
            "a request at zero was not served: {body}"
        );
    }
    // The scale-up said why (one event per reason, its message the latest).
    scaled_event(store, "cold", "waiting)").await;
}
