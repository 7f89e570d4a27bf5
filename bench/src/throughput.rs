//! End-to-end placement throughput: simulated nodes registered in etcd under leases, workloads
//! submitted through the gRPC API, placements observed as committed allocations. In the same
//! run it measures etcd's raw batched-write rate, the ceiling for persisted placements.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use uni_core::client::{read_token, Target};
use uni_core::model::{AcceleratorDevice, Node, NodeStatus, ObjectMeta, ResourceAmounts, Workload};
use uni_core::store::keys::{AllocationKey, NodeKey, TypedKey};
use uni_core::store::{codec, EtcdStore, EventKind, KvStore, Txn, TxnOp};
use uni_core::testing::EtcdServer;
use uni_core::tls::client::ClientTls;
use uni_proto::v1 as pb;

const GIB: u64 = 1 << 30;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// etcd to use; without it a private etcd is started on free ports.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// A running scheduler's API (http://HOST:PORT, insecure); without it one is started.
    #[arg(long, conflicts_with = "secure")]
    scheduler: Option<String>,
    /// Start the scheduler as a cluster runs it (`uni-scheduler init`: TLS, bearer token,
    /// role checks, audit log) instead of with `--insecure`.
    #[arg(long)]
    secure: bool,
    /// Measure twice in this run, insecure and then secured, each on a fresh etcd and
    /// scheduler, and report secured over insecure.
    #[arg(long, conflicts_with_all = ["secure", "scheduler", "etcd_endpoints"])]
    compare_secure: bool,
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    #[arg(long, default_value_t = 100_000)]
    workloads: usize,
    /// Concurrent CreateWorkload calls.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Submit at this many workloads per second (open loop) instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// After the saturated run, submit this many more workloads at half the measured rate
    /// and report their latency (0 to skip).
    #[arg(long, default_value_t = 20_000)]
    half_load_workloads: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Phase {
    workloads: usize,
    placed: usize,
    submit_per_second: f64,
    placements_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
}

#[derive(Serialize)]
struct Report {
    nodes: usize,
    secure: bool,
    saturated: Phase,
    half_load: Option<Phase>,
    etcd_batched_writes_per_second: f64,
    placements_vs_etcd_ceiling: f64,
    scheduler_max_rss_mib: Option<f64>,
}

/// The etcd at `endpoints`, or (none given) a private one on free ports, kept running as long
/// as the returned server lives.
pub(crate) async fn etcd(
    endpoints: &[String],
) -> anyhow::Result<(Option<EtcdServer>, Vec<String>, Arc<dyn KvStore>)> {
    let (server, endpoints) = if endpoints.is_empty() {
        let server = EtcdServer::start().await?;
        let e = vec![server.endpoint()];
        (Some(server), e)
    } else {
        (None, endpoints.to_vec())
    };
    let store: Arc<dyn KvStore> = Arc::new(EtcdStore::connect(&endpoints).await?);
    Ok((server, endpoints, store))
}

/// The `p` quantile of sorted `latencies`, in milliseconds (0 when there are none).
pub(crate) fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    latencies
        .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Secured against insecure, measured in one run.
#[derive(Serialize)]
struct Comparison {
    insecure: Report,
    secure: Report,
    /// Of the fractions of the etcd ceiling each reached (each has its own etcd).
    placements_vs_ceiling_secure_over_insecure: f64,
    placements_secure_over_insecure: f64,
    max_rss_secure_over_insecure: Option<f64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.compare_secure {
        let report = measure(&args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        return Ok(());
    }
    let insecure = measure(&Args {
        secure: false,
        ..args.clone()
    })
    .await?;
    let secure = measure(&Args {
        secure: true,
        ..args.clone()
    })
    .await?;
    let c = Comparison {
        placements_vs_ceiling_secure_over_insecure: secure.placements_vs_etcd_ceiling
            / insecure.placements_vs_etcd_ceiling,
        placements_secure_over_insecure: secure.saturated.placements_per_second
            / insecure.saturated.placements_per_second,
        max_rss_secure_over_insecure: secure
            .scheduler_max_rss_mib
            .zip(insecure.scheduler_max_rss_mib)
            .map(|(s, i)| s / i),
        insecure,
        secure,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print_report(&c.insecure);
        println!();
        print_report(&c.secure);
        println!();
        println!(
            "secure / insecure: placements {:.3} (of each run's etcd ceiling {:.3}), peak RSS {}",
            c.placements_secure_over_insecure,
            c.placements_vs_ceiling_secure_over_insecure,
            c.max_rss_secure_over_insecure
                .map_or_else(|| "-".to_string(), |r| format!("{r:.3}"))
        );
    }
    Ok(())
}

/// One whole measurement: etcd's ceiling, the saturated phase, the half-load phase.
async fn measure(args: &Args) -> anyhow::Result<Report> {
    let (_private_etcd, endpoints, store) = etcd(&args.etcd_endpoints).await?;
    let ceiling = etcd_ceiling(&store).await?;
    eprintln!("etcd batched writes: {ceiling:.0} keys/s");

    let keepers = register_nodes(&store, args.nodes).await?;
    eprintln!("registered {} nodes", args.nodes);
    let mut scheduler = None;
    let pki = tempfile::tempdir()?;
    let api = match &args.scheduler {
        Some(s) => Target {
            server: s.clone(),
            ..Target::default()
        },
        None => {
            let (child, api, _) =
                start_scheduler(&endpoints, args.secure.then_some(pki.path()), &[]).await?;
            scheduler = Some(child);
            api
        }
    };

    let saturated = phase(&store, &api, args, "sat", args.workloads, args.rate).await?;
    eprintln!(
        "saturated: {:.0} placements/s, p99 {:.1} ms",
        saturated.placements_per_second, saturated.latency_p99_ms
    );
    let half_load = if args.half_load_workloads > 0 {
        let rate = saturated.placements_per_second / 2.0;
        let p = phase(
            &store,
            &api,
            args,
            "half",
            args.half_load_workloads,
            Some(rate),
        )
        .await?;
        eprintln!(
            "at {rate:.0}/s: p50 {:.1} ms, p99 {:.1} ms",
            p.latency_p50_ms, p.latency_p99_ms
        );
        Some(p)
    } else {
        None
    };
    let rss = scheduler
        .as_ref()
        .and_then(|c| c.id())
        .and_then(|pid| rss_mib(pid, "VmHWM:"));
    let report = Report {
        nodes: args.nodes,
        secure: args.secure,
        placements_vs_etcd_ceiling: saturated.placements_per_second / ceiling,
        saturated,
        half_load,
        etcd_batched_writes_per_second: ceiling,
        scheduler_max_rss_mib: rss,
    };
    drop(keepers);
    Ok(report)
}

/// etcd's rate for allocation-sized puts in transactions of 127, 8 writers.
async fn etcd_ceiling(store: &Arc<dyn KvStore>) -> anyhow::Result<f64> {
    const KEYS: usize = 40_000;
    const WRITERS: usize = 8;
    let value = vec![b'x'; 400];
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let value = value.clone();
        tasks.spawn(async move {
            let ids: Vec<usize> = (0..KEYS / WRITERS).collect();
            for chunk in ids.chunks(127) {
                let ops = chunk
                    .iter()
                    .map(|i| TxnOp::put(format!("/bench/ceiling/{w}/{i}"), value.clone()));
                store.txn(Txn::new().and_then(ops)).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(KEYS as f64 / start.elapsed().as_secs_f64())
}

fn sim_node(i: usize) -> Node {
    // A mix like a real fleet: most nodes CPU-only, some with 8 GPUs of one of two models.
    let (gpus, model, gpu_gib) = match i % 10 {
        0 => (8, "NVIDIA A100-SXM4-80GB", 80),
        1 => (8, "NVIDIA L4", 24),
        _ => (0, "", 0),
    };
    let name = format!("sim-{i:05}");
    let capacity = ResourceAmounts {
        compute_milli: 64_000,
        memory_bytes: 256 * GIB,
        device_milli: gpus as u64 * 1000,
        device_memory_bytes: gpus as u64 * gpu_gib * GIB,
    };
    let mut status = NodeStatus {
        capacity,
        allocatable: capacity,
        ready: true,
        address: "127.0.0.1".into(),
        ..NodeStatus::default()
    };
    status.inventory.accelerators = (0..gpus)
        .map(|d| AcceleratorDevice {
            index: d,
            uuid: format!("GPU-{name}-{d}"),
            model: model.to_string(),
            memory_bytes: gpu_gib * GIB,
            healthy: true,
            ..AcceleratorDevice::default()
        })
        .collect();
    Node {
        meta: ObjectMeta::cluster(name),
        status,
        ..Node::default()
    }
}

/// Registers nodes as agents do, each group of 100 under one lease kept alive by the bench.
pub(crate) async fn register_nodes(
    store: &Arc<dyn KvStore>,
    n: usize,
) -> anyhow::Result<Vec<uni_core::store::LeaseKeeper>> {
    let mut keepers = Vec::new();
    let ids: Vec<usize> = (0..n).collect();
    for group in ids.chunks(100) {
        let keeper =
            uni_core::store::LeaseKeeper::grant(store.clone(), Duration::from_secs(30)).await?;
        let ops = group
            .iter()
            .map(|i| {
                let node = sim_node(*i);
                let key = NodeKey::new(node.meta.name.clone())?.format();
                Ok(TxnOp::Put {
                    key,
                    value: codec::encode(&node)?,
                    lease: keeper.id(),
                })
            })
            .collect::<uni_core::Result<Vec<_>>>()?;
        store.txn(Txn::new().and_then(ops)).await?;
        keepers.push(keeper);
    }
    Ok(keepers)
}

/// Starts `uni-scheduler` on `endpoints` with `extra` flags: with `--insecure`, or secured by
/// `init` in `pki`. Returns the process, its API, and its gateway's address.
pub(crate) async fn start_scheduler(
    endpoints: &[String],
    pki: Option<&Path>,
    extra: &[&str],
) -> anyhow::Result<(tokio::process::Child, Target, String)> {
    let exe: PathBuf = std::env::current_exe()?.with_file_name("uni-scheduler");
    if !exe.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p uni-scheduler) or pass --scheduler",
            exe.display()
        );
    }
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(["--etcd-endpoints", &endpoints.join(",")])
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--gateway-listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    match pki {
        Some(dir) => {
            let init = std::process::Command::new(&exe)
                .args(["init", "--no-context", "--dir"])
                .arg(dir)
                .stdout(Stdio::null())
                .status()?;
            if !init.success() {
                bail!("uni-scheduler init failed: {init}");
            }
            cmd.arg("--config").arg(dir.join("scheduler.yaml"));
        }
        None => {
            cmd.arg("--insecure");
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let (mut addr, mut gateway) = (None, None);
    while let Some(line) = lines.next_line().await? {
        if let Some(a) = line.strip_prefix("api listening on ") {
            addr = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("gateway listening on ") {
            gateway = Some(a.to_string());
        }
        if addr.is_some() && gateway.is_some() {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = addr.context("scheduler printed no address")?;
    let gateway = gateway.context("scheduler printed no gateway address")?;
    let target = match pki {
        Some(dir) => Target {
            server: format!("https://{addr}"),
            tls: Some(ClientTls::from_files(
                Some(&dir.join("ca.crt")),
                None,
                None,
            )?),
            token: Some(read_token(&dir.join("admin.token"))?),
            ..Target::default()
        },
        None => Target {
            server: format!("http://{addr}"),
            ..Target::default()
        },
    };
    Ok((child, target, gateway))
}

/// The mix repeats every `TEMPLATES` workloads.
const TEMPLATES: usize = 20;

fn bench_workload(prefix: &str, i: usize) -> Workload {
    // Mostly CPU services, some fractional-GPU inference, a few whole-GPU replicas.
    let accel = match i % TEMPLATES {
        0 => "\n        accelerator: {memory: 20Gi, shareable: true}",
        1 => "\n        accelerator: {memory: 60Gi}",
        _ => "",
    };
    let yaml = format!(
        r#"
meta: {{name: {prefix}-{i}, namespace: bench}}
spec:
  inference:
    template:
      command: ["serve"]
      resources:
        compute: 500m
        memory: 1Gi{accel}
    replicas: {{min: 1, max: 1, desired: 1}}
"#
    );
    serde_yaml::from_str(&yaml).expect("bench workload yaml is valid")
}

/// Submits `count` workloads and waits until each has its allocation.
async fn phase(
    store: &Arc<dyn KvStore>,
    api: &Target,
    args: &Args,
    prefix: &str,
    count: usize,
    rate: Option<f64>,
) -> anyhow::Result<Phase> {
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start_rev = store.revision().await?;
    let mut watch = store.watch(&AllocationKey::prefix(), start_rev + 1).await?;
    let watcher = {
        let submitted = submitted.clone();
        let prefix = format!("{prefix}-");
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            let mut first = None;
            let mut last = Instant::now();
            while latencies.len() < count {
                let Some(batch) = watch.next().await else {
                    break;
                };
                let now = Instant::now();
                for e in batch? {
                    if e.kind != EventKind::Put {
                        continue;
                    }
                    // The allocation id starts with `namespace.workload.`: no need to decode the
                    // value, which keeps the load generator's own CPU use low.
                    let Some(workload) = AllocationKey::parse(&e.kv.key)
                        .ok()
                        .and_then(|k| k.id.split('.').nth(1).map(str::to_string))
                    else {
                        continue;
                    };
                    if !workload.starts_with(&prefix) {
                        continue;
                    }
                    if let Some(t) = submitted.lock().await.get(&workload) {
                        latencies.push(now.duration_since(*t));
                        first.get_or_insert(now);
                        last = now;
                    }
                }
            }
            anyhow::Ok((latencies, first, last))
        })
    };

    // Built once: parsing a manifest per request would spend the load generator's share of
    // the cores on YAML.
    let templates: Vec<pb::Workload> = (0..TEMPLATES)
        .map(|i| pb::Workload::from(&bench_workload(prefix, i)))
        .collect();
    let start = Instant::now();
    let client = pb::workload_service_client::WorkloadServiceClient::new(api.connect().await?);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        while tasks.len() >= args.concurrency {
            if let Some(r) = tasks.join_next().await {
                r??;
            }
        }
        let mut w = templates[i % templates.len()].clone();
        let name = format!("{prefix}-{i}");
        if let Some(meta) = w.meta.as_mut() {
            meta.name = name.clone();
        }
        let mut client = client.clone();
        let submitted = submitted.clone();
        tasks.spawn(async move {
            submitted.lock().await.insert(name, Instant::now());
            client
                .create_workload(pb::CreateWorkloadRequest {
                    workload: Some(w),
                    dry_run: false,
                })
                .await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let (mut latencies, first, last) =
        tokio::time::timeout(Duration::from_secs(600), watcher).await???;
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let placed = latencies.len();
    let span = first.map_or(0.0, |f| last.duration_since(start.min(f)).as_secs_f64());
    Ok(Phase {
        workloads: count,
        placed,
        submit_per_second: count as f64 / submit_secs,
        placements_per_second: placed as f64 / span.max(f64::MIN_POSITIVE),
        latency_p50_ms: pct(0.50),
        latency_p99_ms: pct(0.99),
        latency_max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    })
}

/// A memory figure of `/proc/PID/status` (`VmHWM:` the peak, `VmRSS:` the current) in MiB.
pub(crate) fn rss_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn print_report(r: &Report) {
    let api = if r.secure {
        "TLS + token + authorization + audit"
    } else {
        "insecure"
    };
    println!("nodes: {}, API: {api}", r.nodes);
    let row = |name: &str, p: &Phase| {
        println!(
            "{name:<10} {:>9} {:>9} {:>12.0} {:>14.0} {:>9.1} {:>9.1} {:>9.1}",
            p.workloads,
            p.placed,
            p.submit_per_second,
            p.placements_per_second,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.latency_max_ms
        )
    };
    println!(
        "{:<10} {:>9} {:>9} {:>12} {:>14} {:>9} {:>9} {:>9}",
        "PHASE", "WORKLOADS", "PLACED", "SUBMIT/S", "PLACEMENTS/S", "P50 MS", "P99 MS", "MAX MS"
    );
    row("saturated", &r.saturated);
    if let Some(h) = &r.half_load {
        row("half-load", h);
    }
    println!(
        "etcd batched writes/s: {:.0}",
        r.etcd_batched_writes_per_second
    );
    println!(
        "placements / etcd ceiling: {:.3}",
        r.placements_vs_etcd_ceiling
    );
    if let Some(m) = r.scheduler_max_rss_mib {
        println!("scheduler max RSS: {m:.0} MiB");
    }
}
