//! The inference gateway end to end: a real agent runs a Python HTTP service as two
//! replicas, and requests go through the scheduler's gateway to them.

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use uni_core::model::{ReplicaPhase, ReplicaStatus};
use uni_core::store::keys::StatusKey;
use uni_core::store::{codec, KvStore};
use uni_core::testing::EtcdServer;

use harness::agent::{replica_processes, AgentProcess};
use harness::{create, http_service, wait_allocations, wait_for, Scheduler, WAIT};

/// A threaded HTTP/1.1 server on `$PORT`. `/slow` and `/stream` wait for files in the
/// directory given as its argument, so the test decides when they answer.
const SERVER: &str = r#"
import json, os, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
gate = sys.argv[1]
me = os.environ["UNIVERSAL_REPLICA"]
def wait(name):
    while not os.path.exists(os.path.join(gate, name)):
        time.sleep(0.01)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, body):
        b = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply("ok")
        if self.path.startswith("/slow"):
            open(os.path.join(gate, "arrived-" + me), "w").close()
            wait("release")
            return self.reply(me)
        if self.path.startswith("/hold/"):
            name = self.path[len("/hold/"):]
            open(os.path.join(gate, name + "-" + me), "w").close()
            wait(name)
            return self.reply(me)
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for word, after in ((b"first\n", "go"), (b"last\n", None)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(word), word))
                self.wfile.flush()
                if after: wait(after)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.reply(json.dumps({"replica": me, "path": self.path,
            "authorization": self.headers.get("Authorization", ""),
            "prefix": self.headers.get("X-Forwarded-Prefix", "")}))
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(self.rfile.read(n).decode())
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const NODE: &str = "gw-node";

fn service(gate: &Path) -> uni_core::model::Workload {
    let gate = gate.display().to_string();
    http_service("web", &["python3", "-c", SERVER, &gate], (1, 2, 2), "")
}

/// Waits until `n` replicas of `web` are Ready.
async fn ready(store: &Arc<dyn KvStore>, n: usize) {
    wait_for(
        store,
        &StatusKey::workload_prefix("default", "web"),
        "ready replicas",
        |kvs| {
            kvs.iter()
                .filter_map(|kv| codec::decode::<ReplicaStatus>(&kv.key, &kv.value).ok())
                .filter(|s| s.phase == ReplicaPhase::Ready)
                .count()
                == n
        },
    )
    .await;
}

type Http = Client<HttpConnector, Full<Bytes>>;

async fn get(client: &Http, url: &str) -> (StatusCode, String) {
    let req = Request::get(url)
        .header("authorization", "Bearer cluster-secret")
        .body(Full::default())
        .expect("request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let code = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The replicas that marked `prefix` in `gate`.
fn markers(gate: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(gate)
        .expect("gate")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(prefix).map(str::to_string))
        .collect()
}

/// Polls `gate` until a replica marks `prefix`; returns which.
async fn marker(gate: &Path, prefix: &str) -> String {
    let poll = async {
        loop {
            if let Some(r) = markers(gate, prefix).into_iter().next() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, poll)
        .await
        .unwrap_or_else(|_| panic!("no replica marked {prefix}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_routes_streams_balances_and_survives_a_dead_replica() {
    let etcd = EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("store"));
    let s = Scheduler::start(&etcd.endpoint(), "gw").await;
    let data = tempfile::tempdir().expect("tempdir");
    let _agent = AgentProcess::start(&etcd.endpoint(), data.path(), NODE, "gw=real");
    let gate = tempfile::tempdir().expect("gate dir");
    // Replicas may run as another user: let them write their marks.
    std::fs::set_permissions(
        gate.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    create(&s, &service(gate.path())).await;
    ready(&store, 2).await;
    let listed = s
        .client()
        .await
        .get_workload(uni_proto::v1::GetWorkloadRequest {
            namespace: "default".into(),
            name: "web".into(),
        })
        .await
        .expect("get web")
        .into_inner();
    let endpoint = listed.status.unwrap_or_default().endpoint;
    assert_eq!(endpoint, format!("{}/default/web/", s.gateway));

    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("{}/default/web", s.gateway);

    // The prefix is stripped, the query kept, and cluster credentials never reach a replica.
    let (code, body) = get(&client, &format!("{base}/v1/models?x=1")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let seen = json(&body);
    assert_eq!(seen["path"], "/v1/models?x=1");
    assert_eq!(seen["prefix"], "/default/web");
    assert_eq!(
        seen["authorization"], "",
        "the Authorization header was passed on"
    );

    // Idle replicas take turns.
    let mut who = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (code, body) = get(&client, &format!("{base}/whoami")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        who.insert(
            json(&body)["replica"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(who.len(), 2, "both replicas answer: {who:?}");

    // A replica busy with a request is passed over while the other is idle.
    let slow = {
        let (client, url) = (client.clone(), format!("{base}/slow"));
        tokio::spawn(async move { get(&client, &url).await })
    };
    let busy = marker(gate.path(), "arrived-").await;
    for _ in 0..4 {
        let (_, body) = get(&client, &format!("{base}/whoami")).await;
        assert_ne!(
            json(&body)["replica"],
            busy.as_str(),
            "sent to the busy replica"
        );
    }
    std::fs::write(gate.path().join("release"), "").expect("release");
    let (code, body) = tokio::time::timeout(WAIT, slow)
        .await
        .expect("slow request ends")
        .expect("task");
    assert_eq!((code, body.as_str()), (StatusCode::OK, busy.as_str()));

    // A streamed response arrives piece by piece: the first chunk before the second exists.
    let req = Request::get(format!("{base}/stream"))
        .body(Full::default())
        .expect("request");
    let resp = client.request(req).await.expect("stream response");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("first chunk in time")
        .expect("a frame")
        .expect("frame");
    assert_eq!(first.into_data().expect("data"), Bytes::from("first\n"));
    std::fs::write(gate.path().join("go"), "").expect("go");
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(rest, Bytes::from("last\n"));

    // A request body goes through, and HTTP/2 without TLS (h2c) is served.
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::post(format!("{base}/echo"))
        .body(Full::new(Bytes::from("tokens in, tokens out")))
        .expect("request");
    let resp = h2.request(req).await.expect("h2 response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let echoed = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(echoed, Bytes::from("tokens in, tokens out"));

    // Unknown services are named in the error.
    let (code, body) = get(&client, &format!("{}/default/nope/x", s.gateway)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("default/nope"), "{body}");

    // One replica dies: every request is still answered, by the other one, while the
    // scheduler and agent catch up.
    let victim = replica_processes(NODE)
        .into_iter()
        .filter(|(_, r)| r == "default/web/0")
        .map(|(pid, _)| pid)
        .collect::<Vec<_>>();
    assert!(!victim.is_empty(), "replica 0 runs");
    for pid in victim {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    for i in 0..20 {
        let (code, body) = get(&client, &format!("{base}/whoami")).await;
        assert_eq!(
            code,
            StatusCode::OK,
            "request {i} after a replica died: {body}"
        );
    }

    // The agent restarts it; then both serve again.
    wait_for(
        &store,
        &StatusKey::workload_prefix("default", "web"),
        "replica 0 restarted and ready",
        |kvs| {
            let ready: Vec<ReplicaStatus> = kvs
                .iter()
                .filter_map(|kv| codec::decode::<ReplicaStatus>(&kv.key, &kv.value).ok())
                .filter(|s| s.phase == ReplicaPhase::Ready)
                .collect();
            ready.len() == 2 && ready.iter().any(|s| s.restarts >= 1)
        },
    )
    .await;

    // Scaled down, the replica that leaves drains: it gets no new request and finishes the
    // one it has (longer than the gateways take to notice), then stops.
    let first = {
        let (client, url) = (client.clone(), format!("{base}/hold/drain"));
        tokio::spawn(async move { get(&client, &url).await })
    };
    let one = marker(gate.path(), "drain-").await;
    let second = {
        let (client, url) = (client.clone(), format!("{base}/hold/drain"));
        tokio::spawn(async move { get(&client, &url).await })
    };
    let both = tokio::time::timeout(WAIT, async {
        loop {
            let marks = markers(gate.path(), "drain-");
            if marks.len() == 2 {
                return marks;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("each replica holds one request");
    assert!(both.contains(&one), "{both:?}");
    s.client()
        .await
        .scale_workload(uni_proto::v1::ScaleWorkloadRequest {
            namespace: "default".into(),
            name: "web".into(),
            desired: Some(1),
            ..Default::default()
        })
        .await
        .expect("scale to 1");
    wait_allocations(&store, "replica 1 draining", |all| {
        all.iter().any(|a| a.replica == 1 && a.draining.is_some())
    })
    .await;
    for _ in 0..4 {
        let (code, body) = get(&client, &format!("{base}/whoami")).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(
            json(&body)["replica"],
            "0",
            "a draining replica got a new request"
        );
    }
    // The held requests outlast the gateways' settle time, then finish on their replicas.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        harness::allocations(&store)
            .await
            .iter()
            .any(|a| a.replica == 1),
        "replica 1 was stopped with a request in flight"
    );
    std::fs::write(gate.path().join("drain"), "").expect("release the held requests");
    let mut served = Vec::new();
    for h in [first, second] {
        let (code, body) = tokio::time::timeout(WAIT, h)
            .await
            .expect("answer")
            .expect("task");
        assert_eq!(
            code,
            StatusCode::OK,
            "a request on a draining replica failed: {body}"
        );
        served.push(body);
    }
    served.sort();
    assert_eq!(served, vec!["0", "1"]);
    wait_allocations(&store, "replica 1 gone once drained", |all| {
        all.iter().all(|a| a.replica == 0)
    })
    .await;

    // The gateway counted what it answered.
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains(
            r#"universal_gateway_requests_total{code="404",namespace="default",service="nope"} 1"#
        ),
        "{metrics}"
    );
}
