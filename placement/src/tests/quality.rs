//! Placement quality: the default policy packs at least as well as best fit, and does not
//! strand accelerators where best fit does.

use uni_core::model::Interconnect;
use uni_core::units::GIB;

use super::fixtures::*;
use crate::mix::Mix;
use crate::policy::Policy;
use crate::request::{GpuDemand, ModelFilter};
use crate::select;
use crate::snapshot::Snapshot;
use crate::typical::TypicalShape;

/// A GPU node with 2 free devices but little CPU left, next to a roomy CPU node.
fn with_cpu_node() -> Snapshot {
    snapshot([
        gpu_node("gpu", "nvidia-a100-80gb", 2, 16_000),
        cpu_node("cpu", 64_000, 256 << 30),
    ])
}

/// Two GPU nodes: one with free devices and little CPU, one with every device busy but CPU
/// left.
fn gpu_only() -> Snapshot {
    let mut s = snapshot([
        gpu_node("free-gpus", "nvidia-a100-80gb", 2, 14_000),
        gpu_node("busy", "nvidia-a100-80gb", 2, 40_000),
    ]);
    let busy = whole(2, 2, 0, Interconnect::Any);
    let mut reserve = busy.clone();
    reserve.compute_milli = 20_000;
    let d = place(&s, &reserve, &Policy::best_fit()).expect("fits");
    assert_eq!(d.node, "busy");
    s.add_allocation(&allocation("running", &reserve, &d));
    s
}

/// A CPU job, then a one-GPU job needing 8 UCU: does the GPU job still fit?
fn gpu_job_fits_after_cpu_job(mut s: Snapshot, policy: &Policy) -> (String, bool) {
    let cpu_job = cpu(12_000);
    let d = commit(&mut s, &cpu_job, policy, "cpu-job").expect("cpu job fits");
    let mut gpu_job = whole(1, 1, 0, Interconnect::Any);
    gpu_job.compute_milli = 8_000;
    (d.node, place(&s, &gpu_job, policy).is_ok())
}

#[test]
fn best_fit_strands_gpus_and_the_default_policy_does_not() {
    assert_eq!(
        gpu_job_fits_after_cpu_job(with_cpu_node(), &Policy::best_fit()),
        ("gpu".to_string(), false)
    );
    assert_eq!(
        gpu_job_fits_after_cpu_job(with_cpu_node(), &Policy::default()),
        ("cpu".to_string(), true)
    );
    // Without CPU nodes (as in the openb trace), CPU work goes where no GPU is left to strand.
    assert_eq!(
        gpu_job_fits_after_cpu_job(gpu_only(), &Policy::best_fit()),
        ("free-gpus".to_string(), false)
    );
    assert_eq!(
        gpu_job_fits_after_cpu_job(gpu_only(), &Policy::default()),
        ("busy".to_string(), true)
    );
}

/// Replays a deterministic mixed stream; returns the milli-devices allocated.
fn replay(policy: &Policy) -> u64 {
    let nodes = (0..24).map(|i| {
        let model = ["nvidia-t4", "nvidia-a100-80gb", "nvidia-v100-32gb"][i % 3];
        gpu_node(
            &format!("n{i:02}"),
            model,
            [1, 2, 4, 8][i % 4],
            [32_000, 64_000, 96_000][i % 3],
        )
    });
    let mut s = snapshot(nodes);
    let mut seed = 42u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut allocated = 0;
    for i in 0..400 {
        let req = match next(10) {
            0..=2 => {
                let mut r = fraction([100, 250, 500, 750][next(4) as usize] as u32);
                r.compute_milli = 1000 + 1000 * next(8);
                r
            }
            3..=6 => {
                let mut r = whole(1, 1, 0, Interconnect::Any);
                r.compute_milli = 2000 + 1000 * next(12);
                r
            }
            7 => whole([2, 4, 8][next(3) as usize], 0, 0, Interconnect::Any),
            _ => cpu(1000 + 1000 * next(16)),
        };
        if let Ok(d) = commit(&mut s, &req, policy, &format!("p{i}")) {
            allocated += d
                .devices
                .iter()
                .map(|b| u64::from(b.share_milli))
                .sum::<u64>();
        }
    }
    s.check_consistency().expect("consistent");
    allocated
}

#[test]
fn default_policy_allocates_at_least_as_much_as_best_fit() {
    let ours = replay(&Policy::default().exhaustive());
    let best_fit = replay(&Policy::best_fit());
    assert!(ours >= best_fit, "ours {ours} < best fit {best_fit}");
    let bounded = replay(&Policy::default());
    assert!(
        bounded >= best_fit,
        "bounded {bounded} < best fit {best_fit}"
    );
}

/// The only node able to take a rare eight-device job with 64 UCU, next to seven with fewer
/// UCU: CPU work, which strands less on the roomy node, goes to the others while they have
/// room, so the big job still fits.
#[test]
fn the_last_host_of_a_large_shape_is_kept_for_it() {
    let mut nodes = vec![gpu_node("big", "nvidia-a100-80gb", 8, 64_000)];
    nodes.extend((0..7).map(|i| gpu_node(&format!("small-{i}"), "nvidia-a100-80gb", 8, 48_000)));
    let common = TypicalShape::new(4_000, GIB, 1, 1000, 1.0);
    let rare = TypicalShape::new(64_000, 64 * GIB, 8, 1000, 0.001);
    let mut big_job = whole(8, 8, 0, Interconnect::Any);
    big_job.compute_milli = rare.compute_milli;
    let run = |mix: &Mix| {
        let mut s = snapshot(nodes.clone());
        let policy = Policy::default();
        let cpu_job = select::place(&s, &cpu(20_000), &policy, mix).expect("cpu job fits");
        s.add_allocation(&allocation("cpu-job", &cpu(20_000), &cpu_job));
        let fits = select::place(&s, &big_job, &policy, mix).is_ok();
        (cpu_job.node, fits)
    };
    let blind = Mix::of(vec![common.clone()]).unprotected();
    let every = [common.clone(), rare];
    let protecting = Mix::new(vec![common.clone()], std::slice::from_ref(&common), &every);
    assert_eq!(protecting.protected.len(), 1);
    let (node, fits) = run(&protecting);
    assert!(node.starts_with("small") && fits, "{node}");
    // The same policy blind to scarcity takes the roomy node (nothing stranded there).
    assert_eq!(run(&blind), ("big".to_string(), false));
}

#[test]
fn shares_asked_for_by_memory_go_where_they_cost_least() {
    // An A100 80GB and an L4 24GB. The share prices have learned quarters (20 GiB on an
    // A100): by them, 20 GiB on the L4 (0.834 of it) leaves 0.166 nothing fills and forgoes
    // a quarter of a device. But a request for 20 GiB of device memory leaves the device to
    // the scheduler, and its size in thousandths depends on the device: price decides, and
    // the L4 share costs less than the A100 quarter.
    let s = snapshot([
        gpu_node("a100", "nvidia-a100-80gb", 1, 32_000),
        gpu_node("l4", "nvidia-l4", 1, 32_000),
    ]);
    let quarters = vec![
        TypicalShape::new(1000, GIB, 1, 250, 1.0),
        TypicalShape::new(1000, GIB, 1, 1000, 1.0),
    ];
    let mix = Mix::of(quarters);
    assert!(mix.prices.loss(1000, 834) > 0.2);
    let mut req = fraction(250);
    req.gpu = Some(GpuDemand::Fraction {
        milli: None,
        memory_bytes: 20 * GIB,
        tflops: 0.0,
        models: ModelFilter::default(),
    });
    let d = select::place(&s, &req, &Policy::default(), &mix).expect("fits");
    assert_eq!(d.node, "l4");
}
