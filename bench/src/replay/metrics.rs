//! The published metric (the FGD artifact's `merge_alloc_discrete.py`): after every pod, the
//! arrived GPU demand as a percent of capacity, rounded half to even (Python's `round`); the GPU
//! allocation ratio at an integer arrival level is the mean over the pods that rounded to it (or
//! to a neighbour, when none did). Unallocated = 100 - allocation.

/// Highest arrival level reported, percent.
pub const MAX_ARRIVED: usize = 130;

/// Allocation ratio (percent) at each arrival level 0..=130; `None` where the replay has no
/// pod within one level.
pub fn allocation_curve(events: &[(u64, u64)], capacity_milli: u64) -> Vec<Option<f64>> {
    let cap = capacity_milli.max(1) as f64;
    let mut sums = vec![(0.0f64, 0usize); MAX_ARRIVED + 2];
    for &(arrived, allocated) in events {
        let level = (100.0 * arrived as f64 / cap).round_ties_even();
        if level >= 0.0 && (level as usize) < sums.len() {
            let s = &mut sums[level as usize];
            s.0 += 100.0 * allocated as f64 / cap;
            s.1 += 1;
        }
    }
    (0..=MAX_ARRIVED)
        .map(|r| {
            let at = sums[r];
            if at.1 > 0 {
                return Some(at.0 / at.1 as f64);
            }
            let lo = r.saturating_sub(1);
            let near: Vec<(f64, usize)> = (lo..=r + 1).map(|i| sums[i]).collect();
            let n: usize = near.iter().map(|s| s.1).sum();
            (n > 0).then(|| near.iter().map(|s| s.0).sum::<f64>() / n as f64)
        })
        .collect()
}

/// Mean and sample standard deviation.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_average_the_pods_that_round_to_them() {
        // Capacity 1000: arrivals at 0.4%, 0.6%, 1.4%, 3.0% (levels 0, 1, 1, 3).
        let events = [(4, 4), (6, 6), (14, 10), (30, 10)];
        let curve = allocation_curve(&events, 1000);
        assert_eq!(curve[0], Some(0.4));
        assert!((curve[1].unwrap_or(0.0) - 0.8).abs() < 1e-9);
        // Level 2 has no pod: its neighbours' mean.
        assert!((curve[2].unwrap_or(0.0) - (0.6 + 1.0 + 1.0) / 3.0).abs() < 1e-9);
        assert_eq!(curve[3], Some(1.0));
        assert_eq!(curve[5], None);
        // 2.5 rounds to 2, as Python does.
        assert_eq!(allocation_curve(&[(25, 25)], 1000)[2], Some(2.5));
        assert_eq!(mean_sd(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
    }
}
