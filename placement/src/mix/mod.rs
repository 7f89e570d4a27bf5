//! The request mix placement measures against: the typical shapes (fragmentation), the prices
//! of device shares, and the protected largest shapes. One value, learned from what the cluster
//! runs (`learn::MixLearner`) or given (a trace replay), passed to every placement beside the
//! fixed `Policy`.

pub mod counts;
pub mod prices;
pub mod protected;

use crate::typical::{default_typical_shapes, TypicalShape};
use prices::SharePrices;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mix {
    /// Fragmentation is the free accelerator capacity these shapes could no longer use.
    pub typical: Vec<TypicalShape>,
    /// What free device shares are worth to the mix.
    pub prices: SharePrices,
    /// The largest shapes of the mix, whose last hosts placement keeps able to host them.
    pub protected: Vec<TypicalShape>,
}

impl Mix {
    /// Measures against `typical`, prices shares by `priced` and protects the largest of
    /// `protect`. Prices need only each share's frequency and protection every shape however
    /// rare (rare large shapes are the ones that need it), so both may take more shapes than
    /// the fragmentation measure, which is evaluated per shape on every candidate.
    pub fn new(
        typical: Vec<TypicalShape>,
        priced: &[TypicalShape],
        protect: &[TypicalShape],
    ) -> Self {
        Self {
            typical,
            prices: SharePrices::of_mix(priced),
            protected: protected::protected(protect),
        }
    }

    /// `shapes` for everything: measured against, priced and protected.
    pub fn of(shapes: Vec<TypicalShape>) -> Self {
        let prices = SharePrices::of_mix(&shapes);
        let protected = protected::protected(&shapes);
        Self {
            typical: shapes,
            prices,
            protected,
        }
    }

    /// A generic AI mix (`typical::default_typical_shapes`), for when nothing is known yet.
    pub fn generic() -> Self {
        Self::of(default_typical_shapes())
    }

    /// The same mix protecting no shape.
    pub fn unprotected(mut self) -> Self {
        self.protected.clear();
        self
    }
}
