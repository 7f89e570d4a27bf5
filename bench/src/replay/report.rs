//! Results of a replay: per policy, the headline (unallocated GPU % at arrived = 100%, mean and
//! sd over seeds), the curve, fragmentation, failed pods and the cost per placement; as a text
//! table or JSON.

use std::fmt::Write;

use serde::Serialize;

use super::metrics::{allocation_curve, mean_sd, MAX_ARRIVED};
use super::run::{Kind, Outcome};

#[derive(Serialize)]
pub struct Context {
    pub nodes: usize,
    pub gpus: u64,
    pub pods: usize,
    pub pods_file: String,
    pub seeds: Vec<u64>,
    pub typical_shapes: usize,
    pub inflation: f64,
}

#[derive(Serialize)]
pub struct Failed {
    pub kind: Kind,
    /// Mean over seeds, by the time arrived demand reached 100%.
    pub by_full: f64,
    /// Mean over seeds, in the whole replay (to 1.3x).
    pub all: f64,
}

#[derive(Serialize)]
pub struct PolicyReport {
    pub policy: String,
    /// The paper's figure for this policy on the default trace.
    pub published: Option<f64>,
    /// Unallocated GPU % at arrived = 100%.
    pub unallocated_at_100_mean: f64,
    pub unallocated_at_100_sd: f64,
    pub per_seed: Vec<(u64, f64)>,
    /// Unallocated GPU % at arrived 0..=130% (mean over seeds; NaN where none).
    pub unallocated_mean: Vec<f64>,
    pub unallocated_sd: Vec<f64>,
    /// Fragmented share of free GPU capacity at arrived = 100% (paper's measure), percent.
    pub fragmentation_at_100: f64,
    pub failed: Vec<Failed>,
    pub microseconds_per_placement: f64,
}

/// Unallocated GPU % at arrived = 100% in one replay.
pub fn headline_of(outcome: &Outcome, capacity: u64) -> f64 {
    allocation_curve(&outcome.events, capacity)[100].map_or(f64::NAN, |a| 100.0 - a)
}

impl PolicyReport {
    /// `published`: the paper's figure for this policy, when the replay is the paper's.
    pub fn new(
        policy: &str,
        published: Option<f64>,
        outcomes: &[(u64, Outcome)],
        capacity: u64,
    ) -> Self {
        let curves: Vec<Vec<Option<f64>>> = outcomes
            .iter()
            .map(|(_, o)| allocation_curve(&o.events, capacity))
            .collect();
        let (mut mean, mut sd) = (Vec::new(), Vec::new());
        for level in 0..=MAX_ARRIVED {
            let xs: Vec<f64> = curves
                .iter()
                .filter_map(|c| c[level].map(|a| 100.0 - a))
                .collect();
            let (m, s) = mean_sd(&xs);
            mean.push(m);
            sd.push(s);
        }
        let per_seed: Vec<(u64, f64)> = outcomes
            .iter()
            .map(|(seed, o)| (*seed, headline_of(o, capacity)))
            .collect();
        let heads: Vec<f64> = per_seed.iter().map(|s| s.1).collect();
        let (head_mean, head_sd) = mean_sd(&heads);
        let frags: Vec<f64> = outcomes
            .iter()
            .filter_map(|(_, o)| o.fragmentation.iter().find(|f| f.0 == 100).map(|f| f.1))
            .collect();
        let n = outcomes.len().max(1) as f64;
        let failed = Kind::ALL
            .iter()
            .map(|&kind| {
                let (mut all, mut by_full) = (0usize, 0usize);
                for (_, o) in outcomes {
                    if let Some(f) = o.failed.iter().find(|f| f.0 == kind) {
                        all += f.1;
                        by_full += f.2;
                    }
                }
                Failed {
                    kind,
                    by_full: by_full as f64 / n,
                    all: all as f64 / n,
                }
            })
            .collect();
        let placing: f64 = outcomes.iter().map(|(_, o)| o.placing.as_secs_f64()).sum();
        let placements: usize = outcomes.iter().map(|(_, o)| o.placements).sum();
        PolicyReport {
            policy: policy.to_string(),
            published,
            unallocated_at_100_mean: head_mean,
            unallocated_at_100_sd: head_sd,
            per_seed,
            unallocated_mean: mean,
            unallocated_sd: sd,
            fragmentation_at_100: mean_sd(&frags).0,
            failed,
            microseconds_per_placement: 1e6 * placing / placements.max(1) as f64,
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    pub context: Context,
    pub policies: Vec<PolicyReport>,
}

/// Arrival levels shown in the text table's curve.
const LEVELS: [usize; 10] = [70, 80, 85, 90, 95, 100, 105, 110, 120, 130];

impl Report {
    pub fn table(&self) -> String {
        let c = &self.context;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "openb replay: {} nodes, {} GPUs, {} trace pods ({}), inflated to {:.1}x GPU \
             capacity, {} typical shapes, seeds {:?}",
            c.nodes, c.gpus, c.pods, c.pods_file, c.inflation, c.typical_shapes, c.seeds
        );
        let _ = writeln!(
            s,
            "\nunallocated GPU % at arrived = 100% (mean ± sd over seeds), fragmentation of the \
             free GPUs at 100%, failed pods by 100% (cpu-only/shared/1-gpu/multi), all failed \
             pods, decision time"
        );
        let _ = writeln!(
            s,
            "{:<22} {:>14} {:>7} {:>7} {:>24} {:>8} {:>10}",
            "policy", "unalloc@100", "paper", "frag%", "failed@100", "failed", "us/place"
        );
        for p in &self.policies {
            let failed: Vec<String> = p
                .failed
                .iter()
                .map(|f| format!("{:.0}", f.by_full))
                .collect();
            let all: f64 = p.failed.iter().map(|f| f.all).sum();
            let _ = writeln!(
                s,
                "{:<22} {:>8.2} ± {:<4.2} {:>7} {:>7.1} {:>24} {:>8.0} {:>10.1}",
                p.policy,
                p.unallocated_at_100_mean,
                p.unallocated_at_100_sd,
                p.published.map_or("-".to_string(), |v| format!("{v:.2}")),
                p.fragmentation_at_100,
                failed.join("/"),
                all,
                p.microseconds_per_placement
            );
        }
        let _ = writeln!(s, "\nunallocated GPU % by arrived demand (mean over seeds)");
        let _ = write!(s, "{:<22}", "arrived %");
        for l in LEVELS {
            let _ = write!(s, " {l:>6}");
        }
        let _ = writeln!(s);
        for p in &self.policies {
            let _ = write!(s, "{:<22}", p.policy);
            for l in LEVELS {
                let _ = write!(s, " {:>6.2}", p.unallocated_mean[l]);
            }
            let _ = writeln!(s);
        }
        s
    }
}
