//! Typical shapes, as the FGD paper's artifact derives them from a trace (`GetTypicalPods` in
//! its `pkg/utils/frag.go`, run with CPU pods included, 95% popularity and step 1): pods are
//! grouped by (CPU, GPU share, GPU count, GPU models); the most frequent groups, ties to the
//! larger request, are taken until they cover 95% of the pods; weights are their frequencies.
//! The universal policy is given the same mix (memory added as each group's mean), as a live
//! scheduler would learn it from the requests it sees.

use std::collections::HashMap;

use uni_core::units::MIB;
use uni_scheduler::placement::request::ModelFilter;
use uni_scheduler::placement::select::TypicalShape;

use super::trace::TracePod;

/// The paper's popularity threshold.
pub const COVERAGE: f64 = 0.95;

/// What a policy learns from a trace: its typical shapes (the fragmentation measure) and every
/// shape asked for (the largest of which are protected, see `score::scarcity`).
#[derive(Debug, Clone)]
pub struct Mix {
    pub typical: Vec<TypicalShape>,
    pub all: Vec<TypicalShape>,
}

impl Mix {
    pub fn of(pods: &[TracePod]) -> Self {
        Self {
            typical: typical_shapes(pods, COVERAGE),
            all: typical_shapes(pods, 1.0),
        }
    }
}

pub fn typical_shapes(pods: &[TracePod], coverage: f64) -> Vec<TypicalShape> {
    // key -> (count, memory sum)
    let mut groups: HashMap<(u64, u32, u32, String), (u64, u64)> = HashMap::new();
    for p in pods {
        // kube-scheduler counts a pod without a CPU request as 100 milli-CPU.
        let cpu = if p.cpu_milli == 0 { 100 } else { p.cpu_milli };
        let key = (cpu, p.gpu_milli, p.num_gpu, p.gpu_spec.join("|"));
        let e = groups.entry(key).or_insert((0, 0));
        e.0 += 1;
        e.1 += p.memory_mib * MIB;
    }
    let mut sorted: Vec<_> = groups.into_iter().collect();
    // Most frequent first; equal counts: larger CPU, share, count, then model list first (the
    // reverse of the artifact's ascending `Less`).
    sorted.sort_by(|(ka, (ca, _)), (kb, (cb, _))| cb.cmp(ca).then_with(|| kb.cmp(ka)));
    let total = pods.len() as f64;
    let mut covered = 0.0;
    let mut out = Vec::new();
    for ((cpu, milli, count, spec), (n, memory)) in sorted {
        if covered >= coverage * total {
            break;
        }
        covered += n as f64;
        let mut shape = TypicalShape::new(cpu, memory / n.max(1), count, milli, n as f64 / total);
        shape.models = ModelFilter {
            allowed: spec
                .split('|')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            forbidden: Vec::new(),
        };
        out.push(shape);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: u64, num_gpu: u32, milli: u32) -> TracePod {
        TracePod {
            name: "p".into(),
            cpu_milli: cpu,
            memory_mib: 1024,
            num_gpu,
            gpu_milli: milli,
            gpu_spec: vec![],
        }
    }

    #[test]
    fn most_frequent_groups_until_covered() {
        let mut pods = vec![pod(4000, 1, 500); 6];
        pods.extend(vec![pod(8000, 1, 1000); 3]);
        pods.push(pod(2000, 0, 0));
        let shapes = typical_shapes(&pods, 0.85);
        assert_eq!(shapes.len(), 2);
        assert_eq!((shapes[0].compute_milli, shapes[0].gpu_milli), (4000, 500));
        assert!((shapes[0].weight - 0.6).abs() < 1e-9);
        assert_eq!(shapes[0].memory_bytes, 1024 * MIB);
        assert_eq!(typical_shapes(&pods, 0.95).len(), 3);
    }
}
