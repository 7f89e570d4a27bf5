//! Share prices: what a device's free share is worth to the work still to come.
//!
//! The mix's device shares are priced by the dual of the configuration LP of bin packing
//! (Gilmore and Gomory): `y[s]` is the fraction of a device a share `s` is worth when the mix is
//! packed as tightly as its frequencies allow, the largest prices such that no set of shares
//! that fits on one device is worth more than one device. A free gap of `g` thousandths is worth
//! `value[g]`, the most the mix's shares that fit in it are worth together (a knapsack over the
//! prices). Placing a share `s` in a gap `g` forgoes `value[g] - value[s] - value[g - s]`
//! devices (`score::gap_value` charges it).

use std::sync::Arc;

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOutcome};
use uni_core::units::MILLI_PER_DEVICE;

use crate::typical::TypicalShape;

/// Cutting planes added before settling for feasible prices short of the best (the openb
/// mix needs ~25).
const MAX_ROUNDS: usize = 200;

/// Share sizes priced, the most frequent: the LP has one variable each. Rarer sizes are worth
/// what the priced ones that fit in them are.
const MAX_SHARES: usize = 64;

/// How far over one device a set of shares may be priced before it counts as a violated
/// constraint: above the LP solver's own feasibility tolerance (1e-7), so that a set the LP
/// already holds is never found violated again.
const TOLERANCE: f64 = 1e-6;

/// Value, in devices, of each free gap `0..=1000` thousandths under a mix's share prices.
#[derive(Debug, Clone, PartialEq)]
pub struct SharePrices {
    value: Arc<[f64]>,
}

impl Default for SharePrices {
    /// No mix: every gap is worth nothing, so no placement forgoes anything.
    fn default() -> Self {
        Self {
            value: vec![0.0; MILLI_PER_DEVICE as usize + 1].into(),
        }
    }
}

impl SharePrices {
    /// The prices of `shapes`' device shares (each shape counts `weight * gpus` shares of its
    /// `gpu_milli`; CPU-only shapes none), and the gap values they give.
    pub fn of_mix(shapes: &[TypicalShape]) -> Self {
        let items = items(shapes);
        if items.is_empty() {
            return Self::default();
        }
        match prices(&items) {
            Some(prices) => Self {
                value: knapsack(&items, &prices).0.into(),
            },
            None => {
                tracing::warn!("share prices: the LP found no solution; shares are not priced");
                Self::default()
            }
        }
    }

    /// What `free` thousandths are worth, in devices.
    pub fn value(&self, free: u32) -> f64 {
        self.value[free.min(MILLI_PER_DEVICE) as usize]
    }

    /// Devices forgone by placing `share` thousandths in a device with `free` free: never
    /// negative (a gap is worth at least its parts).
    pub fn loss(&self, free: u32, share: u32) -> f64 {
        let share = share.min(free);
        (self.value(free) - self.value(share) - self.value(free - share)).max(0.0)
    }
}

/// Distinct shares (thousandths, 1..=1000) and how often each is asked for: the
/// `MAX_SHARES` most frequent, smallest first.
fn items(shapes: &[TypicalShape]) -> Vec<(u32, f64)> {
    let mut items: Vec<(u32, f64)> = Vec::new();
    for s in shapes
        .iter()
        .filter(|s| s.uses_accelerators() && s.weight > 0.0)
    {
        let share = s.gpu_milli.min(MILLI_PER_DEVICE);
        let count = s.weight * f64::from(s.gpus);
        match items.iter_mut().find(|(size, _)| *size == share) {
            Some((_, n)) => *n += count,
            None => items.push((share, count)),
        }
    }
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    items.truncate(MAX_SHARES);
    items.sort_by_key(|&(size, _)| size);
    items
}

/// The dual prices: maximize `sum n[i] * y[i]` subject to `sum c[i] * y[i] <= 1` for every
/// set `c` of shares that fits on one device. Solved by adding the most valuable set that
/// breaks the bound (a knapsack over the current prices) until none does. The prices returned
/// are scaled so that no set is worth more than one device, whatever the solver's rounding.
fn prices(items: &[(u32, f64)]) -> Option<Vec<f64>> {
    // Start from the sets of one share repeated as often as it fits.
    let mut sets: Vec<Vec<f64>> = (0..items.len())
        .map(|i| {
            let mut set = vec![0.0; items.len()];
            set[i] = f64::from(MILLI_PER_DEVICE / items[i].0);
            set
        })
        .collect();
    let (mut y, mut best) = (vec![0.0; items.len()], 0.0);
    for _ in 0..MAX_ROUNDS {
        y = solve(items, &sets)?;
        let (value, choice) = knapsack(items, &y);
        best = value[MILLI_PER_DEVICE as usize];
        if best <= 1.0 + TOLERANCE {
            break;
        }
        let mut set = vec![0.0; items.len()];
        let mut free = MILLI_PER_DEVICE as usize;
        while free > 0 {
            match choice[free] {
                Some(i) => {
                    set[i] += 1.0;
                    free -= items[i].0 as usize;
                }
                None => free -= 1,
            }
        }
        if sets.contains(&set) {
            break;
        }
        sets.push(set);
    }
    Some(y.iter().map(|p| p / best.max(1.0)).collect())
}

/// The LP over the sets found so far.
fn solve(items: &[(u32, f64)], sets: &[Vec<f64>]) -> Option<Vec<f64>> {
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    let vars: Vec<_> = items
        .iter()
        .map(|&(_, n)| lp.add_var(n, (0.0, 1.0)))
        .collect();
    for set in sets {
        let expr: Vec<_> = vars
            .iter()
            .zip(set)
            .filter(|(_, &c)| c > 0.0)
            .map(|(&v, &c)| (v, c))
            .collect();
        lp.add_constraint(expr.as_slice(), ComparisonOp::Le, 1.0);
    }
    match lp.solve().ok()? {
        SolveOutcome::Solution(solution) => {
            Some(vars.iter().map(|&v| solution.var_value(v)).collect())
        }
        SolveOutcome::Interrupted(_) => None,
    }
}

/// For each capacity `0..=1000`, the most the shares that fit in it are worth at `prices`
/// (each share as often as wanted), and the last share of one best set.
fn knapsack(items: &[(u32, f64)], prices: &[f64]) -> (Vec<f64>, Vec<Option<usize>>) {
    let n = MILLI_PER_DEVICE as usize + 1;
    let mut value = vec![0.0; n];
    let mut choice = vec![None; n];
    for free in 1..n {
        value[free] = value[free - 1];
        for (i, &(size, _)) in items.iter().enumerate() {
            let size = size as usize;
            if size <= free && value[free - size] + prices[i] > value[free] + TOLERANCE {
                value[free] = value[free - size] + prices[i];
                choice[free] = Some(i);
            }
        }
    }
    (value, choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(list: &[(u32, f64)]) -> Vec<TypicalShape> {
        list.iter()
            .map(|&(milli, w)| TypicalShape::new(1000, 0, 1, milli, w))
            .collect()
    }

    #[test]
    fn halves_and_thirds_are_priced_by_how_they_pack() {
        // More 0.32 shares than 0.65 ones: some go three to a device, so a 0.32 is worth a
        // third and a 0.65 the rest of its device.
        let v = SharePrices::of_mix(&shares(&[(470, 1.0), (320, 2.0), (650, 1.0)]));
        assert!((v.value(1000) - 1.0).abs() < 1e-6);
        assert!((v.value(470) - 0.5).abs() < 1e-6);
        assert!((v.value(320) - 1.0 / 3.0).abs() < 1e-6);
        assert!((v.value(650) - 2.0 / 3.0).abs() < 1e-6);
        // 0.32 beside a 0.65 or on a fresh device forgoes nothing; beside a 0.47 it leaves
        // 0.21 that nothing in the mix fills, and the 0.53 could have held another 0.47.
        assert!(v.loss(350, 320) < 1e-6);
        assert!(v.loss(1000, 320) < 1e-6);
        assert!((v.loss(530, 320) - (0.5 - 1.0 / 3.0)).abs() < 1e-6);
        // A 0.47 beside another forgoes nothing.
        assert!(v.loss(530, 470) < 1e-6);
    }

    #[test]
    fn shares_that_ride_along_in_leftovers_are_free() {
        // Many 0.81 shares each leave 0.19 that the few 0.16 shares fit in.
        let v = SharePrices::of_mix(&shares(&[(810, 10.0), (160, 1.0)]));
        assert!(v.value(160).abs() < 1e-6);
        assert!((v.value(810) - 1.0).abs() < 1e-6);
        assert!(v.loss(190, 160) < 1e-6);
    }

    #[test]
    fn whole_devices_forgo_nothing_and_no_mix_prices_nothing() {
        let mut mix = shares(&[(500, 1.0)]);
        mix.push(TypicalShape::new(8000, 0, 4, 1000, 1.0));
        let v = SharePrices::of_mix(&mix);
        assert!(v.loss(1000, 1000) < 1e-6);
        assert!((v.value(1000) - 1.0).abs() < 1e-6);
        let none = SharePrices::of_mix(&[TypicalShape::new(1000, 0, 0, 0, 1.0)]);
        assert_eq!(none, SharePrices::default());
        assert_eq!(none.loss(530, 320), 0.0);
    }
}
