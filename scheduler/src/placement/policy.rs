//! Policies: how much each score plugin weighs, the typical request mix fragmentation is
//! measured against, and how many feasible nodes are scored. Besides our own weighted policy,
//! the published baselines of the FGD paper (Weng et al., ATC '23) are policies too, so trace
//! replays run them through the same filter, shape and select code as the live scheduler.

use uni_core::units::GIB;

use super::request::ModelFilter;
use super::score::gap_value::GapValues;
use super::score::scarcity;

/// Weights of the score plugins; each plugin scores 0..100 and the total is the weighted
/// mean. `spread` counts only for requests that ask to spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub cost: f64,
    pub packing: f64,
    pub fragmentation: f64,
    pub spread: f64,
}

/// A request shape that is common in the cluster: fragmentation is the free accelerator
/// capacity such shapes could no longer use (the FGD paper's measure). `gpus = 1` with
/// `gpu_milli < 1000` is a shared device; otherwise `gpus` whole devices; `gpus = 0` is
/// CPU-only work (which FGD counts as unable to use any free accelerator).
#[derive(Debug, Clone, PartialEq)]
pub struct TypicalShape {
    pub compute_milli: u64,
    pub memory_bytes: u64,
    pub gpus: u32,
    pub gpu_milli: u32,
    /// Relative frequency; weights need not sum to 1.
    pub weight: f64,
    /// Accelerator models the shape may use (empty: any).
    pub models: ModelFilter,
}

impl TypicalShape {
    pub const fn new(
        compute_milli: u64,
        memory_bytes: u64,
        gpus: u32,
        gpu_milli: u32,
        weight: f64,
    ) -> Self {
        Self {
            compute_milli,
            memory_bytes,
            gpus,
            gpu_milli,
            weight,
            models: ModelFilter {
                allowed: Vec::new(),
                forbidden: Vec::new(),
            },
        }
    }

    /// Whether the shape asks for accelerators at all.
    pub fn uses_accelerators(&self) -> bool {
        self.gpus > 0 && self.gpu_milli > 0
    }
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
    pub typical_shapes: Vec<TypicalShape>,
    /// What free device shares are worth to the mix (set with `typical_shapes`, from them or
    /// from every shape of the mix: `set_typical_shapes`, `set_mix`).
    pub gap_values: GapValues,
    /// The largest shapes of the mix, whose last hosts placement keeps able to host them
    /// (`score::scarcity`; part of the fragmentation score).
    pub protected_shapes: Vec<TypicalShape>,
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
            typical_shapes: default_typical_shapes(),
            gap_values: GapValues::of_mix(&default_typical_shapes()),
            protected_shapes: scarcity::protected(&default_typical_shapes()),
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
            typical_shapes: Vec::new(),
            gap_values: GapValues::default(),
            protected_shapes: Vec::new(),
            cpu_nodes_first: false,
            max_candidates: None,
            scorer: Scorer::Weighted,
            tie_break: TieBreak::First,
            scale: NodeScale::OPENB,
        }
    }

    /// One of the FGD paper's baselines, scoring every feasible node and breaking ties at
    /// random (seed 0; see `with_seed`). `Fgd` needs typical shapes (`with_typical_shapes`).
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
            typical_shapes: Vec::new(),
            gap_values: GapValues::default(),
            protected_shapes: Vec::new(),
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

    /// The same policy measuring fragmentation against `shapes` (e.g. a trace's request mix).
    pub fn with_typical_shapes(mut self, shapes: Vec<TypicalShape>) -> Self {
        self.set_typical_shapes(shapes);
        self
    }

    /// Measures fragmentation against `shapes` from now on, and prices device shares by them.
    pub fn set_typical_shapes(&mut self, shapes: Vec<TypicalShape>) {
        self.gap_values = GapValues::of_mix(&shapes);
        self.typical_shapes = shapes;
    }

    /// Measures fragmentation against `typical` and prices device shares by `priced`, which
    /// may hold more shapes: prices need only each share's frequency, so every share asked for
    /// can count, where the fragmentation measure, evaluated per shape on every candidate,
    /// takes only the most frequent shapes.
    pub fn set_mix(&mut self, typical: Vec<TypicalShape>, priced: &[TypicalShape]) {
        self.gap_values = GapValues::of_mix(priced);
        self.typical_shapes = typical;
    }

    /// The same policy measuring fragmentation against `typical` and pricing device shares by
    /// `priced` (see `set_mix`).
    pub fn with_mix(mut self, typical: Vec<TypicalShape>, priced: &[TypicalShape]) -> Self {
        self.set_mix(typical, priced);
        self
    }

    /// The same policy protecting the largest shapes of `mix` (every shape asked for, however
    /// rare: rare large shapes are the ones that need protecting).
    pub fn with_protected_shapes_of(mut self, mix: &[TypicalShape]) -> Self {
        self.protected_shapes = scarcity::protected(mix);
        self
    }

    /// Whether placement counts the hosts of protected shapes.
    pub fn protects(&self) -> bool {
        self.scorer == Scorer::Weighted
            && self.weights.fragmentation > 0.0
            && !self.protected_shapes.is_empty()
    }
}

/// A generic AI mix: mostly single whole devices, some shared devices, some multi-device
/// replicas, each with a modest host share.
pub fn default_typical_shapes() -> Vec<TypicalShape> {
    vec![
        TypicalShape::new(2_000, 8 * GIB, 1, 250, 0.10),
        TypicalShape::new(4_000, 16 * GIB, 1, 500, 0.10),
        TypicalShape::new(8_000, 32 * GIB, 1, 1000, 0.40),
        TypicalShape::new(16_000, 64 * GIB, 2, 1000, 0.15),
        TypicalShape::new(32_000, 128 * GIB, 4, 1000, 0.15),
        TypicalShape::new(64_000, 256 * GIB, 8, 1000, 0.10),
    ]
}
