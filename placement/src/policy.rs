//! Policies: how much each score plugin weighs, how candidates are scored and how many feasible
//! nodes are. Fixed settings only: what is learned at run time is the [`Mix`]. Besides our own weighted policy,
//! the published baselines of the FGD paper (Weng et al., ATC '23) are policies too, so trace
//! replays run them through the same filter, shape and select code as the live scheduler.

use crate::mix::Mix;

/// Weights of the score plugins; each plugin scores 0..100 and the total is the weighted
/// mean. `spread` counts only for requests that ask to spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub cost: f64,
    pub packing: f64,
    pub fragmentation: f64,
    pub spread: f64,
}

/// How candidates are scored: our weighted plugins, or one of the FGD paper's baselines as its
/// public simulator scores them (integer scores 0..100; see `score::baseline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scorer {
    /// Cost, packing, fragmentation and spread, weighted by `Policy::weights`.
    Weighted,
    /// A uniformly random feasible node, and a random device on it.
    Random,
    /// Tetris's dot product of free and requested (CPU, GPU), smallest first.
    DotProduct,
    /// The node left with the least free (CPU, GPU), each over the largest node's; the
    /// tightest device.
    BestFit,
    /// Fragmentation gradient descent: the least growth of the node's fragmentation measured
    /// against the typical shapes.
    Fgd,
}

/// Which of several equally scored nodes wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// The first found (tightest fit in the index, earliest group): deterministic.
    First,
    /// The first in a random order of the nodes fixed by the seed (a hash of seed and node
    /// name): reproducible. The FGD paper's simulator gives its nodes a seeded random order
    /// (it prefixes their names with a shuffled index) and breaks ties by it.
    Seeded(u64),
}

/// The largest node's compute and devices: the scale the paper's BestFit and DotProduct divide
/// free and requested resources by (`MaxSpecCpu`, `MaxSpecGpu` in its simulator).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeScale {
    pub compute_milli: u64,
    pub devices: u32,
}

impl NodeScale {
    /// The openb trace's largest node: 128 CPUs, 8 GPUs.
    pub const OPENB: NodeScale = NodeScale {
        compute_milli: 128_000,
        devices: 8,
    };
}

/// Feasible nodes scored per node group (class and device models) by the default policy:
/// bounded work on the hot path, as kube-scheduler's `percentageOfNodesToScore`.
pub const DEFAULT_MAX_CANDIDATES: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub weights: Weights,
    /// CPU-only work goes to nodes without accelerators while one fits: an accelerator node's
    /// host capacity is what its devices' work will need (and the accelerator nodes need not
    /// be scored).
    pub cpu_nodes_first: bool,
    /// Feasible nodes scored per node group, tightest fit first; `None` scores every feasible
    /// node (exact, slower).
    pub max_candidates: Option<usize>,
    pub scorer: Scorer,
    pub tie_break: TieBreak,
    /// Scale of the baselines that normalize by the largest node.
    pub scale: NodeScale,
}

impl Default for Policy {
    /// "universal": least fragmentation (FGD's measure plus stranding, see
    /// `score::fragmentation`) weighed against the cheapest shape, then tight packing; replicas that ask to
    /// spread, spread; equals go to the first node in a fixed hashed order, which consolidates
    /// work the way first fit does.
    fn default() -> Self {
        Self {
            name: "universal".to_string(),
            weights: Weights {
                cost: 40.0,
                packing: 1.0,
                fragmentation: 100.0,
                spread: 60.0,
            },
            cpu_nodes_first: true,
            max_candidates: Some(DEFAULT_MAX_CANDIDATES),
            scorer: Scorer::Weighted,
            tie_break: TieBreak::Seeded(0),
            scale: NodeScale::OPENB,
        }
    }
}

impl Policy {
    /// Classic best fit: the node (and device) left with the least free capacity, accelerator
    /// dimension first; blind to cost and to what the leftovers can still run.
    pub fn best_fit() -> Self {
        Self {
            name: "best-fit".to_string(),
            weights: Weights {
                cost: 0.0,
                packing: 1.0,
                fragmentation: 0.0,
                spread: 0.0,
            },
            cpu_nodes_first: false,
            max_candidates: None,
            scorer: Scorer::Weighted,
            tie_break: TieBreak::First,
            scale: NodeScale::OPENB,
        }
    }

    /// One of the FGD paper's baselines, scoring every feasible node and breaking ties at
    /// random (seed 0; see `with_seed`). `Fgd` needs a mix's typical shapes.
    pub fn baseline(scorer: Scorer) -> Self {
        let name = match scorer {
            Scorer::Weighted => "weighted",
            Scorer::Random => "random",
            Scorer::DotProduct => "dotprod",
            Scorer::BestFit => "bestfit",
            Scorer::Fgd => "fgd",
        };
        Self {
            name: name.to_string(),
            weights: Weights {
                cost: 0.0,
                packing: 0.0,
                fragmentation: 0.0,
                spread: 0.0,
            },
            cpu_nodes_first: false,
            max_candidates: None,
            scorer,
            tie_break: TieBreak::Seeded(0),
            scale: NodeScale::OPENB,
        }
    }

    /// The same policy breaking ties (and, for `Random`, choosing) with `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.tie_break = TieBreak::Seeded(seed);
        self
    }

    /// The same policy normalizing by `scale` (the largest node of the cluster).
    pub fn with_scale(mut self, scale: NodeScale) -> Self {
        self.scale = scale;
        self
    }

    /// The same policy scoring every feasible node.
    pub fn exhaustive(mut self) -> Self {
        self.max_candidates = None;
        self
    }

    /// Whether placement counts the hosts of `mix`'s protected shapes.
    pub fn protects(&self, mix: &Mix) -> bool {
        self.scorer == Scorer::Weighted
            && self.weights.fragmentation > 0.0
            && !mix.protected.is_empty()
    }
}
