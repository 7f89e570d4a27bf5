//! An inference replica runs as a real process, becomes Ready through its HTTP probe, is
//! restarted with exponential backoff when killed, and serves its output over gRPC.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_stream::StreamExt;
use uni_core::model::{DeviceBinding, Probe, ProbeAction, ReplicaPhase};
use uni_proto::v1::log_service_client::LogServiceClient;
use uni_proto::v1::{LogStream, StreamLogsRequest};

const SERVER: &str = r#"
import os, sys, http.server
port = int(os.environ["PORT"])
print("env", os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("NVIDIA_VISIBLE_DEVICES"),
      os.environ.get("UNIVERSAL_DEVICE_SHARE"), os.environ.get("UNIVERSAL_REPLICA"))
print("serving on", port)
print("to stderr", file=sys.stderr)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

async fn logs(addr: std::net::SocketAddr, req: StreamLogsRequest) -> String {
    let mut client = LogServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut stream = client.stream_logs(req).await.expect("stream").into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(chunk.node, "n1");
        assert!(chunk.timestamp.is_some());
        out.extend(chunk.data);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn request(workload: &str) -> StreamLogsRequest {
    StreamLogsRequest {
        namespace: NS.into(),
        workload: workload.into(),
        replica: Some(0),
        ..StreamLogsRequest::default()
    }
}

/// Waits until the replica runs a process other than `old` and is Ready; returns the new pid
/// and when it was first seen.
async fn restarted(
    store: &std::sync::Arc<dyn uni_core::store::KvStore>,
    data: &std::path::Path,
    a: &uni_core::model::Allocation,
    old: i32,
    restarts: u32,
) -> (i32, Instant) {
    let (pid, seen) = eventually(Duration::from_secs(30), "a new process", || async {
        pid_of(data, a)
            .filter(|p| *p != old && !processes_of(&a.id).is_empty())
            .map(|p| (p, Instant::now()))
    })
    .await;
    wait_status(
        store,
        a,
        Duration::from_secs(30),
        "Ready after restart",
        |s| s.phase == ReplicaPhase::Ready && s.restarts == restarts,
    )
    .await;
    (pid, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_is_ready_restarted_with_backoff_and_serves_logs() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;

    let (registered, lease) = eventually(Duration::from_secs(10), "node registered", || async {
        node(&store, "n1").await
    })
    .await;
    assert!(registered.status.ready && lease != 0);
    assert_eq!(registered.status.capacity.compute_milli, 8000);
    assert_eq!(registered.status.capacity.device_milli, 2000);
    assert_eq!(
        registered.status.agent_endpoint,
        format!("http://127.0.0.1:{}", agent.grpc_addr().port())
    );

    let w = inference("web", SERVER, Some(http_probe()));
    put_workload(&store, &w).await;
    let mut a = allocation(&w, 0, "n1");
    a.devices = vec![DeviceBinding {
        index: 1,
        uuid: "GPU-test-1".into(),
        share_milli: 250,
        memory_bytes: 20 << 30,
    }];
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    let ready = wait_status(&store, &a, Duration::from_secs(30), "Ready", |s| {
        s.phase == ReplicaPhase::Ready
    })
    .await;
    assert_eq!((ready.node.as_str(), ready.restarts), ("n1", 0));
    let pid1 = pid_of(data.path(), &a).expect("pid");
    assert_eq!(processes_of(&a.id), vec![pid1]);

    // Killed: restarted after the base backoff (0.5 s), then after twice that.
    let killed = Instant::now();
    kill(pid1, libc::SIGKILL);
    let (pid2, seen2) = restarted(&store, data.path(), &a, pid1, 1).await;
    assert!(
        seen2 - killed >= Duration::from_millis(500),
        "{:?}",
        seen2 - killed
    );
    let killed = Instant::now();
    kill(pid2, libc::SIGKILL);
    let (_pid3, seen3) = restarted(&store, data.path(), &a, pid2, 2).await;
    assert!(
        seen3 - killed >= Duration::from_millis(1000),
        "{:?}",
        seen3 - killed
    );

    // Output over gRPC: the environment the agent gave the process, both streams, tail and
    // the run before the last restart.
    let out = logs(agent.grpc_addr(), request("web")).await;
    assert!(out.contains("env GPU-test-1 GPU-test-1 0.25 0"), "{out}");
    assert!(out.contains(&format!("serving on {}", a.port)), "{out}");
    assert!(out.contains("to stderr"), "{out}");
    let stderr = logs(
        agent.grpc_addr(),
        StreamLogsRequest {
            stream: LogStream::Stderr as i32,
            ..request("web")
        },
    )
    .await;
    assert_eq!(stderr, "to stderr\n");
    let tail = logs(
        agent.grpc_addr(),
        StreamLogsRequest {
            stream: LogStream::Stdout as i32,
            tail_lines: Some(1),
            ..request("web")
        },
    )
    .await;
    assert_eq!(tail, format!("serving on {}\n", a.port));
    let previous = logs(
        agent.grpc_addr(),
        StreamLogsRequest {
            previous: true,
            ..request("web")
        },
    )
    .await;
    assert!(previous.contains("serving on"), "{previous}");
    let limited = logs(
        agent.grpc_addr(),
        StreamLogsRequest {
            limit_bytes: Some(5),
            ..request("web")
        },
    )
    .await;
    assert_eq!(limited.len(), 5);

    // Metrics: restarts and running replicas.
    let text = scrape(agent.metrics_addr().expect("metrics")).await;
    assert_eq!(
        metric(
            &text,
            "universal_agent_replica_restarts_total{namespace=\"team-a\",replica=\"0\",workload=\"web\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "universal_agent_replicas_running"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "universal_agent_node_registered"),
        Some(1.0),
        "{text}"
    );

    // Deleting the allocation stops the process and removes its status.
    delete_allocation(&store, &a).await;
    eventually(
        Duration::from_secs(15),
        "status deleted and process gone",
        || async {
            (status(&store, &a).await.is_none() && processes_of(&a.id).is_empty()).then_some(())
        },
    )
    .await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_probe_restarts_the_replica() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(config("n1", data.path()), &store).await;
    let script = "import time\nprint('up')\nwhile True: time.sleep(1)\n";
    let mut w = inference("sick", script, None);
    if let uni_core::model::WorkloadSpec::Inference(s) = &mut w.spec {
        // Nothing listens on this port: every liveness check fails.
        s.liveness_probe = Some(Probe {
            action: ProbeAction::TcpSocket { port: free_port() },
            period_seconds: 1,
            failure_threshold: 2,
            ..Probe::default()
        });
    }
    put_workload(&store, &w).await;
    let a = allocation(&w, 0, "n1");
    let _guard = Guard::of(&[&a]);
    put_allocation(&store, &a).await;
    // Without a readiness probe the replica is Ready once started.
    wait_status(&store, &a, Duration::from_secs(30), "Ready", |s| {
        s.phase == ReplicaPhase::Ready && s.restarts == 0
    })
    .await;
    let s = wait_status(
        &store,
        &a,
        Duration::from_secs(30),
        "restart after liveness failure",
        |s| s.restarts >= 1 && s.message.contains("liveness probe failed"),
    )
    .await;
    assert!(s.message.contains("tcp 127.0.0.1"), "{}", s.message);
    let text = scrape(agent.metrics_addr().expect("metrics")).await;
    let failures = metric(
        &text,
        "universal_agent_probe_failures_total{namespace=\"team-a\",probe=\"liveness\",workload=\"sick\"}",
    )
    .unwrap_or(0.0);
    assert!(failures >= 2.0, "{text}");
    delete_allocation(&store, &a).await;
    eventually(Duration::from_secs(15), "process gone", || async {
        processes_of(&a.id).is_empty().then_some(())
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_streams_are_limited_and_freed_when_clients_go() {
    let (_etcd, store) = etcd().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut c = config("n1", data.path());
    c.max_log_streams = 2;
    let agent = start_agent(c, &store).await;
    let w = inference("chatty-logs", SERVER, None);
    let (_a, _guard) = run_replica(&store, &w, "n1", ReplicaPhase::Ready).await;
    let mut client = LogServiceClient::connect(format!("http://{}", agent.grpc_addr()))
        .await
        .expect("connect");
    let follow = StreamLogsRequest {
        follow: true,
        ..request("chatty-logs")
    };
    let first = client.stream_logs(follow.clone()).await.expect("first");
    let _second = client.stream_logs(follow.clone()).await.expect("second");
    let refused = client.stream_logs(follow.clone()).await.expect_err("third");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("at most 2 log streams"),
        "{refused}"
    );
    // A client that goes away frees its stream.
    drop(first);
    eventually(Duration::from_secs(10), "a stream freed", || {
        let mut client = client.clone();
        let follow = follow.clone();
        async move { client.stream_logs(follow).await.ok().map(|_| ()) }
    })
    .await;
    agent.shutdown().await;
}
