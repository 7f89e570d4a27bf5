//! `uni-bench cost`: what a workload mix costs per hour on a fleet Universal sizes and packs,
//! against the way users buy today: each workload alone on the cheapest whole instance that
//! fits it. Both sides buy the same instance types at the same catalog prices. Universal places
//! each workload by capability (any device with the memory it needs, a share of one when the
//! work can share) into the fleet so far, with the default policy; only when nothing fits does it
//! buy, and then exactly what the careful user would have bought for that workload. So the
//! saving comes from sharing devices and packing, never from buying differently.

mod instances;

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;
use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::units::{GIB, MIB};
use uni_placement::request::{GpuDemand, ModelFilter, ReplicaRequest};
use uni_placement::Snapshot;
use uni_placement::{place, Policy};

use self::instances::InstanceType;
use crate::replay::run::allocation;
use crate::replay::trace::{self, TracePod};
use crate::replay::variant::{self, Variant};
use crate::replay::{self, typical};

/// Device memory behind one whole GPU of the trace: its GPUs are 16 GB parts (T4, P100,
/// V100 16GB; the undisclosed G2/G3 are taken as such in the catalog), so a share of a GPU asks
/// for that share of 16 GiB.
const TRACE_GPU_MEMORY: u64 = 16 * GIB;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The workload mix: a pod list (openb schema); every pod is one running workload.
    #[arg(
        long,
        default_value = "../shared/data/openb/openb_pod_list_default.csv"
    )]
    pods: PathBuf,
    /// What Universal buys when nothing in its fleet fits: `alone` (what the careful user buys
    /// for that workload) or `largest` (the largest size of that family).
    #[arg(long, default_value = "alone")]
    buy: String,
    /// A variant of the pod list, as `replay --variant` makes it: `shared=0.8` (80% of pods
    /// share a GPU), `cpu=0.3`, `one-gpu=0.6` or `multi-gpu=0.3`.
    #[arg(long)]
    variant: Option<String>,
    #[arg(long)]
    json: bool,
}

/// What one workload needs, by capability.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub compute_milli: u64,
    pub memory_bytes: u64,
    /// Whole devices (0: none or a share).
    pub devices: u32,
    /// Device memory per device (whole) or of the share.
    pub device_memory: u64,
    pub shared: bool,
}

pub fn need(pod: &TracePod) -> Need {
    let shared = pod.is_shared();
    Need {
        compute_milli: pod.cpu_milli,
        memory_bytes: pod.memory_mib * MIB,
        devices: if shared { 0 } else { pod.num_gpu },
        device_memory: if pod.num_gpu == 0 {
            0
        } else if shared {
            TRACE_GPU_MEMORY * u64::from(pod.gpu_milli) / 1000
        } else {
            TRACE_GPU_MEMORY
        },
        shared,
    }
}

/// Whether an instance of type `t` alone can run `n`.
fn fits(t: &InstanceType, n: &Need, catalog: &Catalog) -> bool {
    let device_memory = catalog.accelerator(&t.model).map_or(0, |m| m.memory_bytes);
    let devices = if n.shared { 1 } else { n.devices };
    u64::from(t.vcpus) * 1000 >= n.compute_milli
        && u64::from(t.memory_gib) * GIB >= n.memory_bytes
        && t.devices >= devices
        && (devices == 0 || device_memory >= n.device_memory)
}

/// Today: the cheapest instance type that runs the workload alone (a careful user right-sizes
/// each workload but cannot share a GPU or an instance with another team's workload).
pub fn cheapest_alone<'a>(
    types: &'a [InstanceType],
    n: &Need,
    catalog: &Catalog,
) -> Option<&'a InstanceType> {
    types
        .iter()
        .filter(|t| fits(t, n, catalog))
        .min_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour))
}

/// The largest size of the family `cheapest_alone` picks for `n`: the most room to pack later
/// workloads into (per device, the sizes of a family cost the same or more, so this trades a
/// little host price for packing).
pub fn largest_of_family<'a>(
    types: &'a [InstanceType],
    n: &Need,
    catalog: &Catalog,
) -> Option<&'a InstanceType> {
    let cheapest = cheapest_alone(types, n, catalog)?;
    let family = cheapest.name.split('.').next().unwrap_or("");
    types
        .iter()
        .filter(|t| t.name.split('.').next() == Some(family) && fits(t, n, catalog))
        .max_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour))
}

/// The capability request Universal places (no model named).
pub fn request(name: &str, n: &Need) -> ReplicaRequest {
    let mut req = ReplicaRequest::new(
        WorkloadRef::new("mix", name),
        n.compute_milli,
        n.memory_bytes,
    );
    // As the live scheduler does for CPU-only work.
    req.reserve_host_for_accelerators = true;
    req.gpu = if n.shared {
        Some(GpuDemand::Fraction {
            milli: None,
            memory_bytes: n.device_memory,
            tflops: 0.0,
            models: ModelFilter::default(),
        })
    } else if n.devices > 0 {
        Some(GpuDemand::Whole {
            min_devices: n.devices,
            max_devices: n.devices,
            memory_bytes_total: n.device_memory * u64::from(n.devices),
            tflops_total: 0.0,
            interconnect: Default::default(),
            models: ModelFilter::default(),
        })
    } else {
        None
    };
    req
}

#[derive(Serialize, Default)]
pub struct Side {
    pub usd_per_hour: f64,
    pub instances: usize,
    pub devices: u64,
    /// Device capacity in use (thousandths), over all devices bought.
    pub device_utilization: f64,
}

#[derive(Serialize)]
pub struct Report {
    pub workloads: usize,
    pub gpu_workloads: usize,
    pub today: Side,
    pub universal: Side,
    pub saving_percent: f64,
    pub instances_today: Vec<(String, usize)>,
    pub instances_universal: Vec<(String, usize)>,
}

pub fn compare(pods: &[TracePod], catalog: &Catalog, largest: bool) -> anyhow::Result<Report> {
    let types = instances::all(catalog);
    let mix = replay::given_mix(&typical::TraceMix::of(pods));
    let policy = Policy::default();
    let mut today = Side::default();
    let mut today_types: Vec<(String, usize)> = Vec::new();
    let mut fleet = Snapshot::new();
    let mut bought: Vec<(String, usize)> = Vec::new();
    let (mut universal_usd, mut used_milli, mut today_used) = (0.0, 0u64, 0u64);
    for (i, pod) in pods.iter().enumerate() {
        let n = need(pod);
        let t = cheapest_alone(&types, &n, catalog)
            .with_context(|| format!("no instance type runs {}", pod.name))?;
        today.usd_per_hour += t.usd_per_hour;
        today.instances += 1;
        today.devices += u64::from(t.devices);
        today_used += pod.total_gpu_milli();
        count(&mut today_types, &t.name);

        let name = format!("w{i}");
        let req = request(&name, &n);
        let decision = match place(&fleet, &req, &policy, &mix) {
            Ok(d) => d,
            Err(_) => {
                // What a careful user would buy for this workload: any saving below comes
                // only from later workloads sharing the room it leaves.
                let t = if largest {
                    largest_of_family(&types, &n, catalog)
                } else {
                    cheapest_alone(&types, &n, catalog)
                }
                .with_context(|| format!("no instance type runs {}", pod.name))?;
                fleet.upsert_node(instances::node(
                    t,
                    &format!("{}-{}", t.name, fleet.len()),
                    catalog,
                ));
                universal_usd += t.usd_per_hour;
                count(&mut bought, &t.name);
                place(&fleet, &req, &policy, &mix)
                    .map_err(|e| anyhow::anyhow!("{} does not fit a new {}: {e}", name, t.name))?
            }
        };
        used_milli += decision
            .devices
            .iter()
            .map(|b| u64::from(b.share_milli))
            .sum::<u64>();
        fleet.add_allocation(&allocation(&name, &req, &decision));
    }
    let devices: u64 = fleet.nodes().map(|n| n.devices.len() as u64).sum();
    today.device_utilization = today_used as f64 / (today.devices.max(1) * 1000) as f64;
    let universal = Side {
        usd_per_hour: universal_usd,
        instances: fleet.len(),
        devices,
        device_utilization: used_milli as f64 / (devices.max(1) * 1000) as f64,
    };
    if today.usd_per_hour <= 0.0 {
        bail!("empty mix");
    }
    today_types.sort_by_key(|t| std::cmp::Reverse(t.1));
    bought.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok(Report {
        workloads: pods.len(),
        gpu_workloads: pods.iter().filter(|p| p.num_gpu > 0).count(),
        saving_percent: 100.0 * (1.0 - universal.usd_per_hour / today.usd_per_hour),
        today,
        universal,
        instances_today: today_types,
        instances_universal: bought,
    })
}

/// A `--variant` the cost experiment can take: shares of pod kinds, not model constraints.
fn share_variant(v: &str) -> anyhow::Result<Variant> {
    let variant: Variant = v.parse().with_context(|| format!("--variant {v}"))?;
    if matches!(variant, Variant::Spec { .. }) {
        bail!(
            "--variant {v}: the cost experiment buys cloud instance types, which the trace's \
             GPU models do not name; use cpu=, shared=, one-gpu= or multi-gpu="
        );
    }
    Ok(variant)
}

fn count(counts: &mut Vec<(String, usize)>, name: &str) {
    match counts.iter_mut().find(|(n, _)| n == name) {
        Some(c) => c.1 += 1,
        None => counts.push((name.to_string(), 1)),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let catalog = Catalog::builtin().context("hardware catalog")?;
    let variant = args.variant.as_deref().map(share_variant).transpose()?;
    let mut pods = trace::load_pods(&args.pods)?;
    if let Some(v) = variant {
        pods = variant::apply(&pods, &[], v)?;
    }
    let largest = match args.buy.as_str() {
        "alone" => false,
        "largest" => true,
        other => bail!("--buy {other:?}: alone or largest"),
    };
    let r = compare(&pods, &catalog, largest)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{} workloads ({} with GPUs) from {}{}, all running at once\n",
        r.workloads,
        r.gpu_workloads,
        args.pods.display(),
        args.variant
            .as_ref()
            .map_or(String::new(), |v| format!(", variant {v}"))
    );
    println!(
        "{:<44} {:>12} {:>10} {:>8} {:>10}",
        "fleet", "USD/hour", "instances", "GPUs", "GPU used"
    );
    for (label, s) in [
        ("today: each workload alone, cheapest fit", &r.today),
        ("universal: capability requests, packed", &r.universal),
    ] {
        println!(
            "{:<44} {:>12.2} {:>10} {:>8} {:>9.1}%",
            label,
            s.usd_per_hour,
            s.instances,
            s.devices,
            100.0 * s.device_utilization
        );
    }
    println!("\nsaving: {:.1}% of today's price", r.saving_percent);
    let top = |v: &[(String, usize)]| {
        v.iter()
            .take(6)
            .map(|(n, c)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("today buys: {}", top(&r.instances_today));
    println!("universal buys: {}", top(&r.instances_universal));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: u64, mem_mib: u64, num_gpu: u32, milli: u32) -> TracePod {
        TracePod {
            name: "p".into(),
            cpu_milli: cpu,
            memory_mib: mem_mib,
            num_gpu,
            gpu_milli: milli,
            gpu_spec: vec![],
        }
    }

    #[test]
    fn today_right_sizes_and_universal_shares() {
        let catalog = Catalog::builtin().expect("catalog");
        let types = instances::all(&catalog);
        // A quarter-GPU inference with 2 CPUs: today a whole g4dn.xlarge (T4).
        let small = need(&pod(2000, 4096, 1, 250));
        let t = cheapest_alone(&types, &small, &catalog).expect("fits");
        assert_eq!(t.name, "g4dn.xlarge");
        // Twelve CPUs and one GPU: a g4dn.4xlarge.
        let big = need(&pod(12_000, 32_768, 1, 1000));
        assert_eq!(
            cheapest_alone(&types, &big, &catalog).map(|t| t.name.as_str()),
            Some("g4dn.4xlarge")
        );
        // Eight quarter-GPU workloads: two share each g4dn.xlarge (its 4 vCPUs are the limit).
        let pods = vec![pod(2000, 4096, 1, 250); 8];
        let r = compare(&pods, &catalog, false).expect("compare");
        assert_eq!(r.today.instances, 8);
        assert_eq!(r.universal.instances, 4);
        assert!(
            (r.saving_percent - 50.0).abs() < 1e-6,
            "{}",
            r.saving_percent
        );
    }

    #[test]
    fn variants_are_shares_of_pod_kinds_only() {
        assert!(matches!(
            share_variant("shared=0.8"),
            Ok(Variant::Share { .. })
        ));
        let spec = share_variant("spec=0.3").expect_err("spec refused");
        assert!(spec.to_string().contains("--variant spec=0.3"), "{spec}");
        let bad = share_variant("gpus=0.2").expect_err("unknown kind");
        assert!(format!("{bad:#}").contains("unknown kind"), "{bad:#}");
    }
}
