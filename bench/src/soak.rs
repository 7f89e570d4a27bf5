//! A soak run: steady create/finish/delete churn on simulated nodes for a set time. Inference
//! services are created at `--rate` and deleted after `--lifetime-seconds`; every fourth
//! workload is a one-worker training job whose worker reports success (as its agent would) and
//! which the scheduler deletes once finished (`ttl_seconds_after_finished: 0`). Every
//! `--sample-seconds` it samples etcd's database size (whole and in use), the scheduler's
//! resident memory and the placement latency of the interval, and reports the last sample
//! against the first after `--warmup-seconds`: what the cluster retains (events for their TTL,
//! history for a compaction interval) fills up during the warm-up; after it, with compaction
//! and garbage collection working, every measure stays flat.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;
use uni_core::model::{ReplicaPhase, ReplicaStatus, Workload};
use uni_core::store::keys::{AllocationKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, EventKind, KvStore, Pager};
use uni_proto::v1 as pb;

use crate::throughput::{etcd, percentile_ms, register_nodes, rss_mib, start_scheduler};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// etcd to use; without it a private etcd is started on free ports.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// How long the churn runs.
    #[arg(long, default_value_t = 3600)]
    duration_seconds: u64,
    /// Workloads created per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// How long an inference service lives before it is deleted.
    #[arg(long, default_value_t = 60)]
    lifetime_seconds: u64,
    #[arg(long, default_value_t = 60)]
    sample_seconds: u64,
    /// The scheduler's compaction interval (its default is 300 s).
    #[arg(long, default_value_t = 60)]
    compaction_interval_seconds: u64,
    /// The scheduler's event TTL (its default is 3600 s): events are retained that long, so
    /// the store grows until then.
    #[arg(long, default_value_t = 300)]
    event_ttl_seconds: u64,
    /// Samples before this are not compared (the retained window fills up).
    #[arg(long, default_value_t = 600)]
    warmup_seconds: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Clone, Default)]
struct Sample {
    at_seconds: f64,
    created: usize,
    live_workloads: usize,
    db_size_mib: f64,
    db_in_use_mib: f64,
    scheduler_rss_mib: f64,
    placed: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    nodes: usize,
    duration_seconds: u64,
    rate: f64,
    samples: Vec<Sample>,
    /// When the sample the last is compared with was taken.
    compared_from_seconds: f64,
    /// Last sample over the first after the warm-up, for each measure that must stay flat.
    db_in_use_end_vs_start: f64,
    scheduler_rss_end_vs_start: f64,
    latency_p99_end_vs_start: f64,
}

/// Placement latencies seen since the last sample.
#[derive(Default)]
struct Window {
    submitted: HashMap<String, Instant>,
    latencies: Vec<Duration>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (_private_etcd, endpoints, store) = etcd(&args.etcd_endpoints).await?;
    let keepers = register_nodes(&store, args.nodes).await?;
    eprintln!("registered {} nodes", args.nodes);
    let compaction = args.compaction_interval_seconds.to_string();
    let event_ttl = args.event_ttl_seconds.to_string();
    let (scheduler, api, _) = start_scheduler(
        &endpoints,
        None,
        &[
            "--compaction-interval-seconds",
            &compaction,
            "--event-ttl-seconds",
            &event_ttl,
        ],
    )
    .await?;
    let pid = scheduler.id().unwrap_or(0);
    let client = pb::workload_service_client::WorkloadServiceClient::new(api.connect().await?);

    let window: Arc<Mutex<Window>> = Arc::default();
    let follower = {
        let (store, window) = (store.clone(), window.clone());
        tokio::spawn(async move {
            if let Err(e) = follow_placements(store, window).await {
                eprintln!("following placements failed, latencies stop here: {e:#}");
            }
        })
    };

    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration_seconds);
    let lifetime = Duration::from_secs(args.lifetime_seconds);
    let sample_every = Duration::from_secs(args.sample_seconds);
    let mut next_sample = start;
    let mut deletions: VecDeque<(Instant, String)> = VecDeque::new();
    let mut samples = Vec::new();
    let mut created = 0usize;
    let templates = [workload(SERVICE), workload(JOB)];
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let s = sample(&store, &window, pid, start, created).await?;
            eprintln!(
                "{:>6.0}s created {:>7} live {:>5} db {:>7.1} MiB (in use {:>6.1}) rss {:>6.1} MiB p99 {:>7.1} ms",
                s.at_seconds, s.created, s.live_workloads, s.db_size_mib, s.db_in_use_mib,
                s.scheduler_rss_mib, s.latency_p99_ms
            );
            samples.push(s);
            next_sample += sample_every;
        }
        while deletions.front().is_some_and(|(due, _)| *due <= now) {
            let (_, name) = deletions.pop_front().expect("front");
            let mut c = client.clone();
            tokio::spawn(async move {
                let _ = c
                    .delete_workload(pb::DeleteWorkloadRequest {
                        namespace: "soak".into(),
                        name,
                        ..Default::default()
                    })
                    .await;
            });
        }
        let training = created % 4 == 3;
        let name = format!("soak-{}-{created}", if training { "job" } else { "svc" });
        let mut w = templates[usize::from(training)].clone();
        if let Some(m) = w.meta.as_mut() {
            m.name = name.clone();
        }
        window
            .lock()
            .await
            .submitted
            .insert(name.clone(), Instant::now());
        client
            .clone()
            .create_workload(pb::CreateWorkloadRequest {
                workload: Some(w),
                dry_run: false,
            })
            .await?;
        if !training {
            deletions.push_back((Instant::now() + lifetime, name));
        }
        created += 1;
        let due = start + Duration::from_secs_f64(created as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
    }
    samples.push(sample(&store, &window, pid, start, created).await?);
    follower.abort();
    // The first sample after the warm-up (or, in a run shorter than it, after one interval).
    let warm = samples
        .iter()
        .position(|s| s.at_seconds >= args.warmup_seconds as f64)
        .filter(|&i| i + 1 < samples.len())
        .unwrap_or(1.min(samples.len().saturating_sub(1)));
    let ratio = |f: fn(&Sample) -> f64| {
        let first = samples.get(warm).map_or(0.0, f);
        let last = samples.last().map_or(0.0, f);
        if first > 0.0 {
            last / first
        } else {
            0.0
        }
    };
    let report = Report {
        compared_from_seconds: samples.get(warm).map_or(0.0, |s| s.at_seconds),
        nodes: args.nodes,
        duration_seconds: args.duration_seconds,
        rate: args.rate,
        db_in_use_end_vs_start: ratio(|s| s.db_in_use_mib),
        scheduler_rss_end_vs_start: ratio(|s| s.scheduler_rss_mib),
        latency_p99_end_vs_start: ratio(|s| s.latency_p99_ms),
        samples,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    drop(keepers);
    Ok(())
}

/// A one-replica service.
pub(crate) const SERVICE: &str = r#"
  inference:
    template:
      command: ["serve"]
      resources: {compute: 500m, memory: 1Gi}
    replicas: {min: 1, max: 1, desired: 1}
"#;

/// A one-worker job, deleted as soon as it finished.
const JOB: &str = r#"
  training:
    template:
      command: ["train"]
      resources: {compute: "2", memory: 4Gi}
    workers: {min: 1, max: 1}
    ttl_seconds_after_finished: 0
"#;

fn workload(spec: &str) -> pb::Workload {
    let yaml = format!("meta: {{name: soak, namespace: soak}}\nspec:{spec}");
    let w: Workload = serde_yaml::from_str(&yaml).expect("soak workload yaml is valid");
    pb::Workload::from(&w)
}

/// Records each placement's latency; a training worker, once placed, reports success as
/// its agent would.
async fn follow_placements(
    store: Arc<dyn KvStore>,
    window: Arc<Mutex<Window>>,
) -> anyhow::Result<()> {
    let rev = store.revision().await?;
    let mut watch = store.watch(&AllocationKey::prefix(), rev + 1).await?;
    while let Some(batch) = watch.next().await {
        let now = Instant::now();
        for e in batch? {
            if e.kind != EventKind::Put {
                continue;
            }
            let Ok(a) = codec::decode::<uni_core::model::Allocation>(&e.kv.key, &e.kv.value) else {
                continue;
            };
            {
                let mut w = window.lock().await;
                if let Some(t) = w.submitted.remove(&a.workload) {
                    w.latencies.push(now.duration_since(t));
                }
            }
            if a.workload.starts_with("soak-job-") {
                let key =
                    StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)?.format();
                let status = ReplicaStatus {
                    allocation_id: a.id.clone(),
                    node: a.node.clone(),
                    phase: ReplicaPhase::Succeeded,
                    exit_code: Some(0),
                    ..ReplicaStatus::default()
                };
                store.put(&key, codec::encode(&status)?, 0).await?;
            }
        }
    }
    Ok(())
}

async fn sample(
    store: &Arc<dyn KvStore>,
    window: &Mutex<Window>,
    pid: u32,
    start: Instant,
    created: usize,
) -> anyhow::Result<Sample> {
    let health = store.health().await?;
    let mut live = 0;
    let mut pager = Pager::new(WorkloadKey::prefix(), 1000);
    while let Some(page) = pager.next(&**store).await? {
        live += page.kvs.len();
    }
    let mut latencies = std::mem::take(&mut window.lock().await.latencies);
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Ok(Sample {
        at_seconds: start.elapsed().as_secs_f64(),
        created,
        live_workloads: live,
        db_size_mib: mib(health.db_size_bytes),
        db_in_use_mib: mib(health.db_size_in_use_bytes),
        scheduler_rss_mib: rss_mib(pid, "VmRSS:").unwrap_or(0.0),
        placed: latencies.len(),
        latency_p50_ms: pct(0.50),
        latency_p99_ms: pct(0.99),
    })
}

fn print_report(r: &Report) {
    println!(
        "nodes: {}, {} s at {} workloads/s",
        r.nodes, r.duration_seconds, r.rate
    );
    println!(
        "{:>8} {:>8} {:>6} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8}",
        "AT S", "CREATED", "LIVE", "DB MIB", "IN USE", "RSS MIB", "PLACED", "P50 MS", "P99 MS"
    );
    for s in &r.samples {
        println!(
            "{:>8.0} {:>8} {:>6} {:>9.1} {:>9.1} {:>8.1} {:>7} {:>8.1} {:>8.1}",
            s.at_seconds,
            s.created,
            s.live_workloads,
            s.db_size_mib,
            s.db_in_use_mib,
            s.scheduler_rss_mib,
            s.placed,
            s.latency_p50_ms,
            s.latency_p99_ms
        );
    }
    println!(
        "end vs {:.0} s: db in use {:.2}, scheduler RSS {:.2}, p99 latency {:.2}",
        r.compared_from_seconds,
        r.db_in_use_end_vs_start,
        r.scheduler_rss_end_vs_start,
        r.latency_p99_end_vs_start
    );
}
