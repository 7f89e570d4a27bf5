//! Policies: how much each score plugin weighs, the typical request mix fragmentation is
//! measured against, and how many feasible nodes are scored.

use uni_core::units::GIB;

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
/// `gpu_milli < 1000` is a shared device; otherwise `gpus` whole devices. CPU-only shapes
/// (`gpus = 0`) do not use accelerators and are ignored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TypicalShape {
    pub compute_milli: u64,
    pub memory_bytes: u64,
    pub gpus: u32,
    pub gpu_milli: u32,
    /// Relative frequency; weights need not sum to 1.
    pub weight: f64,
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
        }
    }
}

/// Feasible nodes scored per node group (class and device models) by the default policy:
/// bounded work on the hot path, as kube-scheduler's `percentageOfNodesToScore`.
pub const DEFAULT_MAX_CANDIDATES: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub weights: Weights,
    pub typical_shapes: Vec<TypicalShape>,
    /// Feasible nodes scored per node group, tightest fit first; `None` scores every feasible
    /// node (exact, slower).
    pub max_candidates: Option<usize>,
}

impl Default for Policy {
    /// "universal": cheapest first, then least fragmentation (so free accelerators stay usable
    /// by the common shapes), then tight packing; replicas that ask to spread, spread.
    fn default() -> Self {
        Self {
            name: "universal".to_string(),
            weights: Weights {
                cost: 40.0,
                packing: 15.0,
                fragmentation: 30.0,
                spread: 60.0,
            },
            typical_shapes: default_typical_shapes(),
            max_candidates: Some(DEFAULT_MAX_CANDIDATES),
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
            max_candidates: None,
        }
    }

    /// The same policy scoring every feasible node.
    pub fn exhaustive(mut self) -> Self {
        self.max_candidates = None;
        self
    }

    /// The same policy measuring fragmentation against `shapes` (e.g. a trace's request mix).
    pub fn with_typical_shapes(mut self, shapes: Vec<TypicalShape>) -> Self {
        self.typical_shapes = shapes;
        self
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
