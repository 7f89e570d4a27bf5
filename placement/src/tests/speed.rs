//! A quick measure of the hot path (the bench crate measures properly): 10,000 nodes, a mixed
//! stream of requests, each placed and reserved, with old allocations released so the cluster
//! stays busy but not full.

use std::collections::VecDeque;
use std::time::Instant;

use uni_core::model::Interconnect;

use super::fixtures::*;
use crate::policy::Policy;
use crate::request::ReplicaRequest;

fn cluster(nodes: usize) -> crate::snapshot::Snapshot {
    snapshot((0..nodes).map(|i| match i % 10 {
        0..=3 => cpu_node(&format!("cpu-{i}"), 64_000, 256 << 30),
        4..=6 => nvlinked(gpu_node(
            &format!("a100-{i}"),
            "nvidia-a100-80gb",
            8,
            96_000,
        )),
        7 | 8 => gpu_node(&format!("t4-{i}"), "nvidia-t4", 4, 48_000),
        _ => nvlinked(gpu_node(
            &format!("h100-{i}"),
            "nvidia-h100-sxm",
            8,
            192_000,
        )),
    }))
}

fn stream(n: usize) -> Vec<ReplicaRequest> {
    let mut seed = 7u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    (0..n)
        .map(|i| {
            let mut r = match next(10) {
                0..=3 => cpu(500 + 500 * next(16)),
                4..=6 => fraction([100, 250, 500][next(3) as usize]),
                7 | 8 => whole(1, 1, 0, Interconnect::Any),
                _ => whole(2, 8, 0, Interconnect::NvLink),
            };
            r.workload = workload(&format!("w{}", i % 500));
            r.spread = i % 2 == 0;
            r
        })
        .collect()
}

#[test]
#[ignore = "a measurement: cargo test -p uni-scheduler --release --lib placement::tests::speed -- --ignored --nocapture"]
fn placements_on_ten_thousand_nodes() {
    for policy in [Policy::default(), Policy::best_fit()] {
        let mut s = cluster(10_000);
        let reqs = stream(40_000);
        let mut live = VecDeque::new();
        let (mut placed, mut failed) = (0, 0);
        let start = Instant::now();
        for (i, req) in reqs.iter().enumerate() {
            match place(&s, req, &policy) {
                Ok(d) => {
                    let alloc = allocation(&format!("a{i}"), req, &d);
                    s.add_allocation(&alloc);
                    live.push_back(alloc);
                    placed += 1;
                }
                Err(_) => failed += 1,
            }
            // Keep about 30,000 replicas running.
            if live.len() > 30_000 {
                if let Some(old) = live.pop_front() {
                    s.remove_allocation(&old);
                }
            }
        }
        let elapsed = start.elapsed();
        let per = elapsed.as_secs_f64() / reqs.len() as f64;
        println!(
            "{}: {} requests ({placed} placed, {failed} unschedulable) on 10000 nodes in {:.2?}: \
             {:.1} us each, {:.0}/s",
            policy.name,
            reqs.len(),
            elapsed,
            per * 1e6,
            1.0 / per
        );
        // Nothing fits: the full scan that explains why.
        let impossible = whole(16, 16, 0, Interconnect::Any);
        let start = Instant::now();
        for _ in 0..20 {
            assert!(place(&s, &impossible, &policy).is_err());
        }
        println!(
            "{}: unschedulable diagnosis over 10000 nodes: {:.0} us each",
            policy.name,
            start.elapsed().as_secs_f64() / 20.0 * 1e6
        );
    }
}
