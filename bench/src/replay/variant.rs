//! Variants of a pod list, as the FGD paper's artifact derives its other openb traces from the
//! default one (`openb_pod_list_{cpuNNN,gpushareNN,multigpuNN,gpuspecNN}.csv`): the same number
//! of pods, resampled so that one kind makes up a chosen share of them, or a share of the GPU
//! pods given a GPU-model constraint. Sampling is seeded apart from the replay's seeds, so
//! every replay seed sees the same variant.

use anyhow::{bail, Context};

use super::rng::Rng;
use super::run::Kind;
use super::trace::{TraceNode, TracePod};

/// The variant's own seed: fixed, so a variant names one pod list.
const SEED: u64 = 0x0be7_a1a2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// `share` of the pods are of `kind` (drawn from the trace's pods of that kind), the rest
    /// drawn from the other kinds, in their proportions.
    Share { kind: Kind, share: f64 },
    /// `share` of the GPU pods that name no model are constrained to one: a GPU drawn from the
    /// cluster, so models are asked for as often as they are installed.
    Spec { share: f64 },
}

impl std::str::FromStr for Variant {
    type Err = anyhow::Error;

    /// `cpu=0.3`, `shared=0.8`, `one-gpu=0.5`, `multi-gpu=0.3` or `spec=0.33`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (name, share) = s
            .split_once('=')
            .with_context(|| format!("variant {s:?}: expected KIND=SHARE, e.g. cpu=0.3"))?;
        let share: f64 = share
            .trim()
            .parse()
            .with_context(|| format!("variant {s:?}: share {share:?} is not a number"))?;
        if !(0.0..=1.0).contains(&share) {
            bail!("variant {s:?}: share must be within 0..=1");
        }
        let kind = match name.trim() {
            "cpu" => Kind::CpuOnly,
            "shared" => Kind::SharedGpu,
            "one-gpu" => Kind::OneGpu,
            "multi-gpu" => Kind::MultiGpu,
            "spec" => return Ok(Self::Spec { share }),
            other => bail!(
                "variant {s:?}: unknown kind {other:?} (cpu, shared, one-gpu, multi-gpu, spec)"
            ),
        };
        Ok(Self::Share { kind, share })
    }
}

/// `pods` turned into the variant (names stay unique).
pub fn apply(
    pods: &[TracePod],
    nodes: &[TraceNode],
    variant: Variant,
) -> anyhow::Result<Vec<TracePod>> {
    let mut rng = Rng::new(SEED);
    match variant {
        Variant::Share { kind, share } => {
            let (of_kind, others): (Vec<&TracePod>, Vec<&TracePod>) =
                pods.iter().partition(|p| Kind::of(p) == kind);
            let wanted = (share * pods.len() as f64).round() as usize;
            if (wanted > 0 && of_kind.is_empty()) || (wanted < pods.len() && others.is_empty()) {
                bail!("the trace has no pods to draw this variant from");
            }
            let mut out = Vec::with_capacity(pods.len());
            for i in 0..pods.len() {
                let from = if i < wanted { &of_kind } else { &others };
                let p = from[rng.below(from.len())];
                out.push(TracePod {
                    name: format!("{}-v{i}", p.name),
                    ..p.clone()
                });
            }
            Ok(out)
        }
        Variant::Spec { share } => {
            let gpus: Vec<&str> = nodes
                .iter()
                .flat_map(|n| std::iter::repeat_n(n.model.as_str(), n.gpus as usize))
                .collect();
            if gpus.is_empty() {
                bail!("the node list has no GPUs to constrain pods to");
            }
            Ok(pods
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    let draw = rng.below(1_000_000) as f64 / 1_000_000.0;
                    if p.num_gpu > 0 && p.gpu_spec.is_empty() && draw < share {
                        p.gpu_spec = vec![gpus[rng.below(gpus.len())].to_string()];
                    }
                    p
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, num_gpu: u32, gpu_milli: u32) -> TracePod {
        TracePod::sample(name, num_gpu, gpu_milli)
    }

    fn trace() -> Vec<TracePod> {
        (0..100)
            .map(|i| match i % 4 {
                0 => pod(&format!("c{i}"), 0, 0),
                1 => pod(&format!("s{i}"), 1, 500),
                2 => pod(&format!("o{i}"), 1, 1000),
                _ => pod(&format!("m{i}"), 4, 1000),
            })
            .collect()
    }

    #[test]
    fn shares_are_as_asked_and_names_unique() {
        let pods = trace();
        let v: Variant = "cpu=0.6".parse().unwrap();
        let out = apply(&pods, &[], v).unwrap();
        assert_eq!(out.len(), 100);
        assert_eq!(out.iter().filter(|p| p.num_gpu == 0).count(), 60);
        let names: std::collections::HashSet<_> = out.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), 100);
        // Reproducible.
        assert_eq!(apply(&pods, &[], v).unwrap(), out);
    }

    #[test]
    fn spec_constrains_gpu_pods_to_installed_models() {
        let nodes = [TraceNode {
            name: "n".into(),
            cpu_milli: 1000,
            memory_mib: 1024,
            gpus: 2,
            model: "T4".into(),
        }];
        let out = apply(&trace(), &nodes, "spec=1".parse().unwrap()).unwrap();
        for p in &out {
            let want: &[&str] = if p.num_gpu > 0 { &["T4"] } else { &[] };
            assert_eq!(p.gpu_spec, want, "{}", p.name);
        }
    }

    #[test]
    fn bad_variants_say_what_is_wrong() {
        for (s, msg) in [
            ("cpu", "expected KIND=SHARE"),
            ("gpu=0.5", "unknown kind"),
            ("cpu=1.5", "within 0..=1"),
            ("cpu=x", "not a number"),
        ] {
            let e = s.parse::<Variant>().unwrap_err().to_string();
            assert!(e.contains(msg), "{s}: {e}");
        }
    }
}
