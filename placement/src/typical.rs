//! Request shapes: what the request mix is made of. The fragmentation measure is taken
//! against the typical ones, share prices come from their device shares, and the largest are
//! protected.

use uni_core::units::GIB;

use crate::request::ModelFilter;

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

/// Larger accelerator demand first, then more compute.
pub fn largest_first(a: &TypicalShape, b: &TypicalShape) -> std::cmp::Ordering {
    let demand = |s: &TypicalShape| u64::from(s.gpus) * u64::from(s.gpu_milli);
    demand(b)
        .cmp(&demand(a))
        .then(b.compute_milli.cmp(&a.compute_milli))
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
