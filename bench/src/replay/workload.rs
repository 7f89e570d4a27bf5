//! The published protocol's workload for one seed (the FGD paper's artifact,
//! `TunePodsByNodeTotalResource` and `SortClusterPods` in its `pkg/simulator`): the trace's
//! pods, shuffled, then copies drawn uniformly (with replacement) from the trace appended until
//! the next draw's GPU share would take the total GPU demand past 1.3x the cluster's GPUs.
//! Nothing leaves; pods arrive one at a time.

use super::rng::Rng;
use super::trace::TracePod;

/// The paper's inflation: total GPU demand of 1.3x the cluster's GPU capacity.
pub const INFLATION: f64 = 1.3;

/// A pod instance in submission order: which trace pod, and its unique name.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub pod: usize,
    pub name: String,
}

/// The submission order for `seed`. `capacity_milli` is the cluster's GPU capacity.
pub fn arrivals(pods: &[TracePod], capacity_milli: u64, ratio: f64, seed: u64) -> Vec<Arrival> {
    let mut rng = Rng::new(seed);
    // The simulator sorts by name before shuffling, so the file's order does not matter.
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by(|&a, &b| pods[a].name.cmp(&pods[b].name));
    let by_name = order.clone();
    rng.shuffle(&mut order);
    let mut out: Vec<Arrival> = order
        .iter()
        .map(|&i| Arrival {
            pod: i,
            name: pods[i].name.clone(),
        })
        .collect();
    let target = ratio * capacity_milli as f64;
    let mut total: u64 = pods.iter().map(TracePod::total_gpu_milli).sum();
    if pods.is_empty() || total as f64 >= target {
        return out;
    }
    // Its stopping test adds the draw's per-GPU share (not its total): kept as published.
    for copy in 0.. {
        let i = by_name[rng.below(by_name.len())];
        let pod = &pods[i];
        if (total + u64::from(pod.gpu_milli)) as f64 > target {
            break;
        }
        total += pod.total_gpu_milli();
        out.push(Arrival {
            pod: i,
            name: format!("{}-tuned-{copy}", pod.name),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, num_gpu: u32, gpu_milli: u32) -> TracePod {
        TracePod::sample(name, num_gpu, gpu_milli)
    }

    #[test]
    fn shuffles_then_inflates_to_the_ratio() {
        let pods = vec![pod("a", 1, 500), pod("b", 1, 1000), pod("c", 0, 0)];
        // Capacity 2 GPUs: 1.5 GPUs in the trace, inflated toward 2.6.
        let out = arrivals(&pods, 2000, 1.3, 42);
        let mut first: Vec<usize> = out[..3].iter().map(|a| a.pod).collect();
        first.sort_unstable();
        assert_eq!(first, vec![0, 1, 2]);
        let total: u64 = out.iter().map(|a| pods[a.pod].total_gpu_milli()).sum();
        assert!(total <= 2600 && total > 1500, "{total}");
        assert!(out[3..].iter().all(|a| a.name.contains("-tuned-")));
        assert_eq!(out, arrivals(&pods, 2000, 1.3, 42));
        assert_ne!(
            out.iter().map(|a| a.pod).collect::<Vec<_>>(),
            arrivals(&pods, 2000, 1.3, 43)
                .iter()
                .map(|a| a.pod)
                .collect::<Vec<_>>()
        );
    }
}
