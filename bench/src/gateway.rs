//! `uni-bench gateway`: what the inference gateway costs against calling a replica directly,
//! measured in one run on one machine, and how long a request at zero replicas waits.
//!
//! A private etcd and a real `uni-scheduler` (its gateway included); one simulated node, and
//! the bench plays its agent: for every allocation it serves a minimal HTTP replica on the
//! allocation's port (in this process, so the replica is never the bottleneck) and reports it
//! Ready. Throughput: `--concurrency` clients for `--seconds`, direct and through the gateway
//! in alternating rounds. Latency: one request at a time, alternating blocks. Cold start: a
//! `min: 0` service at zero; the time from a request to its answer, which covers the gateway
//! holding it, the leader scaling up, placement and the (instant) replica start, but not a
//! real process's start-up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, UnixMillis, Workload};
use uni_core::store::keys::{AllocationKey, StatusKey, TypedKey};
use uni_core::store::{codec, EventKind, KvStore};
use uni_proto::v1 as pb;

use crate::soak::SERVICE;
use crate::throughput::{etcd, percentile_ms, register_nodes, start_scheduler};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// etcd to use; without it a private etcd is started on free ports.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Clients in the throughput runs, each with one request outstanding.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of one throughput run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Throughput runs of each kind, alternating direct and gateway.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests, one at a time, in each latency block (two blocks of each kind).
    #[arg(long, default_value_t = 2000)]
    latency_requests: usize,
    /// Requests made at zero replicas.
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// What a request to the replica's `/work` waits before its answer, as a model server's
    /// does; the second throughput phase calls it.
    #[arg(long, default_value_t = 10)]
    work_ms: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Report {
    concurrency: usize,
    direct_rps: f64,
    gateway_rps: f64,
    /// Gateway over direct requests per second (target: at least 0.8), with a replica that
    /// answers at once: on one machine the gateway's own work competes with the client's and
    /// the replica's for the same cores.
    rps_ratio: f64,
    /// The same with a replica that waits `work_ms` per request (as a model server does).
    work_ms: u64,
    direct_work_rps: f64,
    gateway_work_rps: f64,
    work_rps_ratio: f64,
    direct_p50_ms: f64,
    direct_p99_ms: f64,
    gateway_p50_ms: f64,
    gateway_p99_ms: f64,
    /// Gateway minus direct, one request at a time (target: under 1 ms at p50).
    added_p50_ms: f64,
    added_p99_ms: f64,
    /// From a request at zero replicas to its answer.
    cold_start_ms: Vec<f64>,
    cold_start_p50_ms: f64,
}

type Http = Client<HttpConnector, Full<Bytes>>;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (_private_etcd, endpoints, store) = etcd(&args.etcd_endpoints).await?;
    let _keepers = register_nodes(&store, 1).await?;
    let (_scheduler, api, gateway) = start_scheduler(&endpoints, None, &[]).await?;
    let cancel = CancellationToken::new();
    let work = Duration::from_millis(args.work_ms);
    let agent = tokio::spawn(play_agent(store.clone(), work, cancel.clone()));
    let mut workloads =
        pb::workload_service_client::WorkloadServiceClient::new(api.connect().await?);
    for w in [service("steady")?, cold()?] {
        workloads
            .create_workload(pb::CreateWorkloadRequest {
                workload: Some(pb::Workload::from(&w)),
                dry_run: false,
            })
            .await?;
    }
    let mut pool = Client::builder(TokioExecutor::new());
    pool.pool_max_idle_per_host(args.concurrency.max(1));
    let client: Http = pool.build_http();
    let via_gateway = format!("http://{gateway}/bench/steady/");
    wait_ok(&client, &via_gateway).await?;
    let port = replica_port(&store, "steady").await?;
    let direct = format!("http://127.0.0.1:{port}/");
    eprintln!("replica on {direct}, gateway at {via_gateway}");

    let mut r = Report {
        concurrency: args.concurrency,
        ..Report::default()
    };
    let (mut d_total, mut g_total) = (0.0, 0.0);
    for round in 0..args.rounds {
        let d = throughput(&client, &direct, args.concurrency, args.seconds).await;
        let g = throughput(&client, &via_gateway, args.concurrency, args.seconds).await;
        eprintln!("round {round}: direct {d:.0} req/s, gateway {g:.0} req/s");
        d_total += d;
        g_total += g;
    }
    let rounds = args.rounds.max(1) as f64;
    r.direct_rps = d_total / rounds;
    r.gateway_rps = g_total / rounds;
    r.rps_ratio = r.gateway_rps / r.direct_rps.max(f64::MIN_POSITIVE);
    r.work_ms = args.work_ms;
    let (mut d_total, mut g_total) = (0.0, 0.0);
    for round in 0..args.rounds {
        let d = throughput(
            &client,
            &format!("{direct}work"),
            args.concurrency,
            args.seconds,
        )
        .await;
        let g = throughput(
            &client,
            &format!("{via_gateway}work"),
            args.concurrency,
            args.seconds,
        )
        .await;
        eprintln!(
            "round {round} ({} ms work): direct {d:.0} req/s, gateway {g:.0} req/s",
            args.work_ms
        );
        d_total += d;
        g_total += g;
    }
    r.direct_work_rps = d_total / rounds;
    r.gateway_work_rps = g_total / rounds;
    r.work_rps_ratio = r.gateway_work_rps / r.direct_work_rps.max(f64::MIN_POSITIVE);

    let (mut d_lat, mut g_lat) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        d_lat.extend(latencies(&client, &direct, args.latency_requests).await?);
        g_lat.extend(latencies(&client, &via_gateway, args.latency_requests).await?);
    }
    d_lat.sort();
    g_lat.sort();
    r.direct_p50_ms = percentile_ms(&d_lat, 0.50);
    r.direct_p99_ms = percentile_ms(&d_lat, 0.99);
    r.gateway_p50_ms = percentile_ms(&g_lat, 0.50);
    r.gateway_p99_ms = percentile_ms(&g_lat, 0.99);
    r.added_p50_ms = r.gateway_p50_ms - r.direct_p50_ms;
    r.added_p99_ms = r.gateway_p99_ms - r.direct_p99_ms;

    let cold = format!("http://{gateway}/bench/cold/");
    for i in 0..args.cold_starts {
        wait_no_replica(&store, "cold").await?;
        let started = Instant::now();
        let (code, _) = get(&client, &cold).await?;
        anyhow::ensure!(code == 200, "request at zero answered {code}");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("cold start {i}: {ms:.0} ms");
        r.cold_start_ms.push(ms);
    }
    let mut sorted = r.cold_start_ms.clone();
    sorted.sort_by(f64::total_cmp);
    r.cold_start_p50_ms = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    cancel.cancel();
    let _ = agent.await;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "gateway, {} clients: {:.0} req/s against {:.0} direct ({:.2} of direct)",
            r.concurrency, r.gateway_rps, r.direct_rps, r.rps_ratio
        );
        println!(
            "replica working {} ms a request: {:.0} req/s against {:.0} direct ({:.2} of direct)",
            r.work_ms, r.gateway_work_rps, r.direct_work_rps, r.work_rps_ratio
        );
        println!(
            "one at a time: p50 {:.3} ms against {:.3} (+{:.3}), p99 {:.3} against {:.3} (+{:.3})",
            r.gateway_p50_ms,
            r.direct_p50_ms,
            r.added_p50_ms,
            r.gateway_p99_ms,
            r.direct_p99_ms,
            r.added_p99_ms
        );
        println!(
            "request at zero replicas answered in {:.0} ms (p50 of {})",
            r.cold_start_p50_ms,
            r.cold_start_ms.len()
        );
    }
    Ok(())
}

/// A one-replica service named `name` in namespace `bench`.
fn service(name: &str) -> anyhow::Result<Workload> {
    let yaml = format!("meta: {{name: {name}, namespace: bench}}\nspec:{SERVICE}");
    Ok(serde_yaml::from_str(&yaml)?)
}

/// Scales to zero a second after its last request.
fn cold() -> anyhow::Result<Workload> {
    let mut w = service("cold")?;
    if let uni_core::model::WorkloadSpec::Inference(s) = &mut w.spec {
        s.replicas = uni_core::model::ReplicaCount {
            min: 0,
            max: 1,
            desired: 0,
        };
        s.autoscaling = Some(uni_core::model::Autoscaling {
            target: 1.0,
            stable_window_seconds: 1,
            panic_window_seconds: 1,
            scale_down_delay_seconds: 1,
            ..Default::default()
        });
    }
    Ok(w)
}

async fn get(client: &Http, url: &str) -> anyhow::Result<(u16, Bytes)> {
    let req = http::Request::get(url).body(Full::default())?;
    let resp = client.request(req).await?;
    let code = resp.status().as_u16();
    Ok((code, resp.into_body().collect().await?.to_bytes()))
}

async fn wait_ok(client: &Http, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if matches!(get(client, url).await, Ok((200, _))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{url} did not answer within 60 s")
}

/// Requests per second with `n` clients for `seconds`.
async fn throughput(client: &Http, url: &str, n: usize, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if matches!(get(&client, &url).await, Ok((200, _))) {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `n` requests one at a time; their latencies.
async fn latencies(client: &Http, url: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (code, _) = get(client, url).await?;
        anyhow::ensure!(code == 200, "{url} answered {code}");
        out.push(t.elapsed());
    }
    Ok(out)
}

async fn replica_port(store: &Arc<dyn KvStore>, name: &str) -> anyhow::Result<u16> {
    let kvs = store
        .range(&AllocationKey::prefix(), Default::default())
        .await?
        .kvs;
    kvs.iter()
        .filter_map(|kv| codec::decode::<Allocation>(&kv.key, &kv.value).ok())
        .find(|a| a.workload == name)
        .map(|a| a.port)
        .context("no allocation for the steady service")
}

/// Waits until `name` has no allocation (scaled to zero).
async fn wait_no_replica(store: &Arc<dyn KvStore>, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let kvs = store
            .range(&AllocationKey::prefix(), Default::default())
            .await?
            .kvs;
        let any = kvs
            .iter()
            .filter_map(|kv| codec::decode::<Allocation>(&kv.key, &kv.value).ok())
            .any(|a| a.workload == name);
        if !any {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{name} did not scale to zero within 120 s")
}

/// Serves every allocation's replica in this process and reports it Ready, as an agent would.
async fn play_agent(
    store: Arc<dyn KvStore>,
    work: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut running: HashMap<String, CancellationToken> = HashMap::new();
    let prefix = AllocationKey::prefix();
    let listed = store.range(&prefix, Default::default()).await?;
    let mut events = store.watch(&prefix, listed.revision + 1).await?;
    let start = |a: Allocation, running: &mut HashMap<String, CancellationToken>| {
        if running.contains_key(&a.id) {
            return;
        }
        let stop = cancel.child_token();
        running.insert(a.id.clone(), stop.clone());
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_replica(store, a, work, stop).await {
                eprintln!("replica failed: {e:#}");
            }
        });
    };
    for kv in listed.kvs {
        if let Ok(a) = codec::decode::<Allocation>(&kv.key, &kv.value) {
            start(a, &mut running);
        }
    }
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            b = events.next() => b,
        };
        let Some(batch) = batch else {
            anyhow::bail!("allocation watch ended");
        };
        for e in batch? {
            let id = AllocationKey::parse(&e.kv.key)?.id;
            match e.kind {
                EventKind::Put => {
                    if let Ok(a) = codec::decode::<Allocation>(&e.kv.key, &e.kv.value) {
                        start(a, &mut running);
                    }
                }
                EventKind::Delete => {
                    if let Some(stop) = running.remove(&id) {
                        stop.cancel();
                    }
                }
            }
        }
    }
}

async fn serve_replica(
    store: Arc<dyn KvStore>,
    a: Allocation,
    work: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port)).await?;
    let key = StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)?.format();
    let status = ReplicaStatus {
        allocation_id: a.id.clone(),
        node: a.node.clone(),
        phase: ReplicaPhase::Ready,
        updated: UnixMillis::now(),
        ..ReplicaStatus::default()
    };
    store.put(&key, codec::encode(&status)?, 0).await?;
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            c = listener.accept() => c?,
        };
        let _ = tcp.set_nodelay(true);
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(
                move |req: hyper::Request<hyper::body::Incoming>| async move {
                    if req.uri().path().ends_with("/work") {
                        tokio::time::sleep(work).await;
                    }
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                },
            );
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}
