//! Typical shapes, as the FGD paper's artifact derives them from a trace (`GetTypicalPods` in
//! its `pkg/utils/frag.go`, run with CPU pods included, 95% popularity and step 1): pods are
//! grouped by (CPU, GPU share, GPU count, GPU models); the most frequent groups, ties to the
//! larger request, are taken until they cover 95% of the pods; weights are their frequencies.
//! The universal policy is given the same mix (memory added as each group's mean); the live
//! scheduler counts the same way what it runs (`placement::mix`).

use uni_core::units::MIB;
use uni_placement::mix::counts::{ShapeCounts, ShapeKey, COVERAGE};
use uni_placement::typical::TypicalShape;

use super::trace::TracePod;

/// What a policy learns from a trace: its typical shapes (the fragmentation measure) and every
/// shape asked for (the largest of which are protected, see `score::scarcity`).
#[derive(Debug, Clone)]
pub struct TraceMix {
    pub typical: Vec<TypicalShape>,
    pub all: Vec<TypicalShape>,
}

impl TraceMix {
    pub fn of(pods: &[TracePod]) -> Self {
        let counts = counts(pods);
        Self {
            typical: counts.typical(COVERAGE),
            all: counts.typical(1.0),
        }
    }
}

/// The trace's pods counted by shape.
pub fn counts(pods: &[TracePod]) -> ShapeCounts {
    let mut counts = ShapeCounts::default();
    for p in pods {
        // kube-scheduler counts a pod without a CPU request as 100 milli-CPU.
        let cpu = if p.cpu_milli == 0 { 100 } else { p.cpu_milli };
        let key = ShapeKey {
            compute_milli: cpu,
            gpu_milli: p.gpu_milli,
            gpus: p.num_gpu,
            models: p.gpu_spec.join("|"),
        };
        counts.add(key, p.memory_mib * MIB);
    }
    counts
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
    fn trace_pods_count_as_kube_scheduler_sees_them() {
        let mut pods = vec![pod(0, 1, 500); 2];
        pods.push(TracePod {
            gpu_spec: vec!["V100M16".into(), "V100M32".into()],
            ..pod(8000, 2, 1000)
        });
        let shapes = TraceMix::of(&pods).all;
        assert_eq!(shapes.len(), 2);
        // No CPU request: 100 milli-CPU.
        assert_eq!((shapes[0].compute_milli, shapes[0].gpu_milli), (100, 500));
        assert_eq!(shapes[0].memory_bytes, 1024 * MIB);
        assert_eq!(shapes[1].models.allowed, vec!["V100M16", "V100M32"]);
        assert_eq!(shapes[1].gpus, 2);
    }
}
