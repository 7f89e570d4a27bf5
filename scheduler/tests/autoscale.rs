//! The autoscaler end to end: a real agent runs a Python service that takes 200 ms per
//! request; load through the gateway scales it, and an idle service with `min: 0` goes to
//! zero and comes back for the request that arrives.

mod harness;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;
use uni_core::model::{Event, Workload, WorkloadSpec};
use uni_core::store::keys::{EventKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore};

use harness::{
    create, http_client, http_get, http_service, real_cluster, wait_allocations, wait_for,
    wait_ready, Load, PY_SERVE,
};

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
        &["python3", "-c", &format!("{SERVER}{PY_SERVE}")],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_up_at_once_spreads_and_scales_back_after_the_delay() {
    let c = real_cluster("as-node").await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("burst", 1, 4, 1)).await;
    let client = http_client();
    let url = format!("{}/default/burst/work", s.gateway);
    wait_ready(store, "burst", 1).await;
    let (code, body) = http_get(&client, &url).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    // Eight clients, each with one request outstanding at a time.
    let load = Load::start(&client, &url, 8);
    desired_becomes(store, "burst", 4).await;
    let message = scaled_event(store, "burst", "-> 4").await;
    assert!(
        message.contains("(burst"),
        "scaled up in panic mode: {message}"
    );
    // The new replicas take load as they become ready.
    wait_ready(store, "burst", 4).await;
    let mut recent = BTreeSet::new();
    for _ in 0..16 {
        let (code, body) = http_get(&client, &url).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        recent.insert(body);
    }
    let answers = load.stop().await;
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::OK, "a request under load failed: {body}");
    }
    let answered = answers.len();
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
    let c = real_cluster("as-node").await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("cold", 0, 2, 1)).await;
    desired_becomes(store, "cold", 0).await;
    wait_allocations(store, "the idle replica removed", |all| {
        !all.iter().any(|a| a.workload == "cold")
    })
    .await;

    // Requests at zero are held, not refused, and every one is answered.
    let client = http_client();
    let url = format!("{}/default/cold/work", s.gateway);
    let held: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { http_get(&client, &url).await })
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

/// Serves `/metrics` with a `queue_depth` gauge read from the file given as its argument.
const METRICS_SERVER: &str = r##"
import os, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
depth_file = sys.argv[1]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = "ok"
        if self.path == "/metrics":
            try:
                depth = open(depth_file).read().strip() or "0"
            except OSError:
                depth = "0"
            body = "# TYPE queue_depth gauge\nqueue_depth{model=\"m\"} " + depth + "\n"
        b = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_scales_on_a_prometheus_gauge_its_replicas_expose() {
    let c = real_cluster("prom-node").await;
    let (store, s) = (&c.store, &c.s);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let depth = dir.path().join("depth");
    std::fs::write(&depth, "0").expect("depth");
    std::fs::set_permissions(&depth, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let scaling = "    autoscaling:
      metric: prometheus
      prometheus: {name: queue_depth}
      target: 2
      stable_window_seconds: 4
      panic_window_seconds: 1
      scale_down_delay_seconds: 2
";
    let script = format!("{METRICS_SERVER}{PY_SERVE}");
    let path = depth.display().to_string();
    let w = http_service(
        "queue",
        &["python3", "-c", &script, &path],
        (1, 3, 1),
        scaling,
    );
    create(s, &w).await;
    wait_ready(store, "queue", 1).await;
    // Six waiting in the server's own queue, two per replica wanted: three replicas.
    std::fs::write(&depth, "6").expect("depth");
    desired_becomes(store, "queue", 3).await;
    let message = scaled_event(store, "queue", "-> 3").await;
    assert!(message.contains("queue_depth"), "{message}");
    // The queue drains: back to one.
    std::fs::write(&depth, "0").expect("depth");
    desired_becomes(store, "queue", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_waits_a_whole_delay_before_it_scales_down() {
    let mut c = real_cluster("failover-node").await;
    let standby = harness::Scheduler::start(&c.endpoint, "standby").await;
    harness::wait_leader(&c.store, Some("failover-node")).await;
    let store = c.store.clone();
    // A long delay against a short stable window: the load's average falls at once when it
    // stops, so only the delay keeps the replicas.
    let scaling = "    autoscaling:
      metric: concurrency
      target: 2
      stable_window_seconds: 2
      panic_window_seconds: 1
      scale_down_delay_seconds: 8
";
    let w = http_service(
        "steady",
        &["python3", "-c", &format!("{SERVER}{PY_SERVE}")],
        (1, 3, 1),
        scaling,
    );
    create(&c.s, &w).await;
    wait_ready(&store, "steady", 1).await;
    // Through the standby's gateway, so the load goes on when the leader dies.
    let client = http_client();
    let url = format!("{}/default/steady/work", standby.gateway);
    let load = Load::start(&client, &url, 4);
    desired_becomes(&store, "steady", 2).await;
    wait_ready(&store, "steady", 2).await;
    let answers = load.stop().await;
    assert!(answers.iter().all(|(code, _)| *code == StatusCode::OK));

    // The leader dies as the load stops; the standby takes over with no history of its own.
    c.s.kill().await;
    harness::wait_leader(&store, Some("standby")).await;
    let key = WorkloadKey::new("default", "steady").expect("key").format();
    // Well inside the delay: every count the new leader writes in that time.
    let now = store.get(&key).await.expect("get").expect("steady");
    let mut seen = vec![desired(&codec::decode(&key, &now.value).expect("decode"))];
    let mut watch = store
        .watch(&key, now.mod_revision + 1)
        .await
        .expect("watch");
    let window = tokio::time::sleep(std::time::Duration::from_secs(6));
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => break,
            batch = watch.next() => match batch {
                Some(Ok(batch)) => seen.extend(
                    batch
                        .iter()
                        .filter_map(|e| codec::decode::<Workload>(&key, &e.kv.value).ok())
                        .map(|w| desired(&w)),
                ),
                _ => break,
            },
        }
    }
    assert!(
        seen.iter().all(|d| *d >= 2),
        "the new leader scaled down within the delay: {seen:?}"
    );
    // After it, the idle service goes back to one.
    desired_becomes(&store, "steady", 1).await;
}
