//! `uni-bench replay`: the FGD paper's openb experiment (Weng et al., ATC '23) through the
//! scheduler's own placement engine, for the paper's baselines and our default policy.

mod metrics;
mod plot;
mod report;
pub(crate) mod rng;
pub mod run;
pub mod trace;
pub mod typical;
pub mod variant;
pub mod workload;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use anyhow::{bail, Context};
use uni_core::catalog::Catalog;
use uni_placement::learn::MixLearner;
use uni_placement::policy::{NodeScale, Policy, Scorer};
use uni_placement::Mix;
use uni_placement::Snapshot;

use self::report::{PolicyReport, Report};
use self::trace::{TraceNode, TracePod};
use self::typical::TraceMix;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Node list (openb `sn,cpu_milli,memory_mib,gpu,model`).
    #[arg(
        long,
        default_value = "../shared/data/openb/openb_node_list_gpu_node.csv"
    )]
    nodes: PathBuf,
    /// Pod list (openb `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,...`).
    #[arg(
        long,
        default_value = "../shared/data/openb/openb_pod_list_default.csv"
    )]
    pods: PathBuf,
    /// Policies, comma-separated: random, dotprod, bestfit, fgd, universal
    /// (universal-exhaustive: the default policy scoring every feasible node; universal-online:
    /// the default policy learning the mix from what it places, as the live scheduler does).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "random,dotprod,bestfit,fgd,universal,universal-online"
    )]
    policy: Vec<String>,
    /// Seeds: `42..51` (inclusive, as the paper) or a comma list.
    #[arg(long, default_value = "42..51")]
    seeds: String,
    /// Replay a variant of the pod list: `cpu=0.3` (30% of pods CPU-only), `shared=0.8`,
    /// `one-gpu=0.5`, `multi-gpu=0.3` (pods resampled from the trace), or `spec=0.33` (a third
    /// of GPU pods constrained to one GPU model), as the FGD paper's other openb traces.
    #[arg(long)]
    variant: Option<String>,
    /// Total GPU demand, as a multiple of the cluster's GPU capacity.
    #[arg(long, default_value_t = workload::INFLATION)]
    inflation: f64,
    /// Replicate the node list to this many nodes (and the demand with it): for measuring the
    /// cost per placement at scale.
    #[arg(long)]
    scale_nodes: Option<usize>,
    /// Replays run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[arg(long)]
    json: bool,
    /// Write a PNG of unallocated GPU % against arrived demand.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Unallocated GPU % at arrived = 100% in the paper (Weng et al., ATC '23, Fig. 9a; the
/// artifact's expected results), on the default trace.
pub fn published(policy: &str) -> Option<f64> {
    match policy {
        "random" => Some(13.70),
        "dotprod" => Some(9.38),
        "bestfit" => Some(7.14),
        "fgd" => Some(4.77),
        _ => None,
    }
}

pub fn parse_seeds(s: &str) -> anyhow::Result<Vec<u64>> {
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
        if b < a {
            bail!("empty seed range {s}");
        }
        return Ok((a..=b).collect());
    }
    s.split(',')
        .map(|x| x.trim().parse().with_context(|| format!("seed {x:?}")))
        .collect()
}

/// The largest node's compute and device count: the baselines' normalization.
pub fn scale_of(nodes: &[TraceNode]) -> NodeScale {
    NodeScale {
        compute_milli: nodes.iter().map(|n| n.cpu_milli).max().unwrap_or(1),
        devices: nodes.iter().map(|n| n.gpus).max().unwrap_or(1),
    }
}

/// A trace's mix handed to our default policy up front: fragmentation measured against its
/// typical shapes; shares priced, and the largest shapes protected, by every shape it asks for.
pub fn given_mix(mix: &TraceMix) -> Mix {
    Mix::new(mix.typical.clone(), &mix.all, &mix.all)
}

/// The policy called `name`, as the replay runs it for `seed`, and the mix it measures against
/// (a learning policy's starting mix).
pub fn policy(
    name: &str,
    seed: u64,
    mix: &TraceMix,
    scale: NodeScale,
) -> anyhow::Result<(Policy, Mix)> {
    let baseline = |s: Scorer| Policy::baseline(s).with_seed(seed).with_scale(scale);
    // FGD measures against the typical shapes only: no prices, nothing protected.
    let typical_only = || Mix {
        typical: mix.typical.clone(),
        ..Mix::default()
    };
    Ok(match name {
        "random" => (baseline(Scorer::Random), Mix::default()),
        "dotprod" => (baseline(Scorer::DotProduct), Mix::default()),
        "bestfit" => (baseline(Scorer::BestFit), Mix::default()),
        "fgd" => (baseline(Scorer::Fgd), typical_only()),
        "universal" => (Policy::default(), given_mix(mix)),
        // Learns its mix from what it places (`online`), starting from the generic one.
        "universal-online" => (Policy::default(), Mix::generic()),
        "universal-exhaustive" => (Policy::default().exhaustive(), given_mix(mix)),
        other => bail!(
            "unknown policy {other:?} (random, dotprod, bestfit, fgd, universal, \
             universal-exhaustive, universal-online)"
        ),
    })
}

/// Whether the policy called `name` learns its mix as it places, as the live scheduler does.
pub fn online(name: &str) -> bool {
    name == "universal-online"
}

/// `nodes` replicated to `count` nodes (names suffixed), and `pods` with them in proportion.
fn scaled(
    nodes: Vec<TraceNode>,
    pods: Vec<TracePod>,
    count: usize,
) -> (Vec<TraceNode>, Vec<TracePod>) {
    let copies = count.div_ceil(nodes.len().max(1));
    let nodes: Vec<TraceNode> = (0..copies)
        .flat_map(|c| {
            nodes.iter().map(move |n| TraceNode {
                name: format!("{}-x{c}", n.name),
                ..n.clone()
            })
        })
        .take(count)
        .collect();
    let pods = (0..copies)
        .flat_map(|c| {
            pods.iter().map(move |p| TracePod {
                name: format!("{}-x{c}", p.name),
                ..p.clone()
            })
        })
        .collect();
    (nodes, pods)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let catalog = Catalog::builtin().context("hardware catalog")?;
    let mut nodes = trace::load_nodes(&args.nodes)?;
    let mut pods = trace::load_pods(&args.pods)?;
    if let Some(v) = &args.variant {
        pods = variant::apply(&pods, &nodes, v.parse()?)?;
    }
    // The mix comes from the trace as given, before any scaling.
    let mix = TraceMix::of(&pods);
    let shapes = &mix.typical;
    if let Some(count) = args.scale_nodes {
        (nodes, pods) = scaled(nodes, pods, count);
    }
    let seeds = parse_seeds(&args.seeds)?;
    let scale = scale_of(&nodes);
    let mut cluster = Snapshot::new();
    for n in &nodes {
        cluster.upsert_node(trace::node_state(n, &catalog));
    }
    let capacity: u64 = nodes.iter().map(|n| u64::from(n.gpus) * 1000).sum();
    if capacity == 0 {
        bail!("the node list has no GPUs");
    }
    for name in &args.policy {
        policy(name, 0, &mix, scale)?;
    }
    let ctx = report::Context {
        nodes: nodes.len(),
        gpus: capacity / 1000,
        pods: pods.len(),
        pods_file: match &args.variant {
            Some(v) => format!("{}, variant {v}", args.pods.display()),
            None => args.pods.display().to_string(),
        },
        seeds: seeds.clone(),
        typical_shapes: shapes.len(),
        inflation: args.inflation,
    };
    let jobs = args.jobs.max(1);
    let mut reports = Vec::new();
    for name in &args.policy {
        let mut outcomes = Vec::new();
        for chunk in seeds.chunks(jobs) {
            let results = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&seed| {
                        let (cluster, pods, mix) = (&cluster, &pods, &mix);
                        s.spawn(move || -> anyhow::Result<(u64, run::Outcome)> {
                            let (policy, given) = policy(name, seed, mix, scale)?;
                            let learner = online(name).then(MixLearner::generic);
                            let arrivals = workload::arrivals(pods, capacity, args.inflation, seed);
                            let outcome = run::replay(
                                cluster,
                                pods,
                                &arrivals,
                                &policy,
                                &given,
                                learner,
                                &mix.typical,
                                capacity,
                            );
                            Ok((seed, outcome))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .map_err(|_| anyhow::anyhow!("a replay thread panicked"))?
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })?;
            for (seed, outcome) in results {
                if !args.json {
                    eprintln!(
                        "{name} seed {seed}: {:.2}% unallocated at 100%",
                        report::headline_of(&outcome, capacity)
                    );
                }
                outcomes.push((seed, outcome));
            }
        }
        // The paper's figures are for its default trace, not for a variant.
        let paper = published(name).filter(|_| args.variant.is_none());
        reports.push(PolicyReport::new(name, paper, &outcomes, capacity));
    }
    let report = Report {
        context: ctx,
        policies: reports,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.plot {
        plot::draw(&report, path)?;
        if !args.json {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}
