//! The request mix, counted by shape: what the fragmentation measure is taken against
//! (`Mix::typical`) and whose largest shapes are protected (`Mix::protected`). The
//! live scheduler counts the replicas that hold allocations (a share is only known once a
//! device is chosen; the allocation keeps the models its request allowed); the trace replay
//! counts the trace's pods.

use std::collections::BTreeMap;

use uni_core::model::Allocation;
use uni_core::units::MILLI_PER_DEVICE;

use crate::request::ModelFilter;
use crate::typical::{largest_first, TypicalShape};

/// The FGD paper's popularity threshold: the most frequent shapes until they cover 95% of the
/// requests are the typical ones.
pub const COVERAGE: f64 = 0.95;

/// Shapes are grouped as the FGD paper's artifact groups pods (`GetTypicalPods`): by CPU,
/// device share, device count and allowed models; memory is the group's mean.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShapeKey {
    pub compute_milli: u64,
    /// Share of each device in thousandths (1000: whole devices; 0: CPU-only).
    pub gpu_milli: u32,
    pub gpus: u32,
    /// Allowed device models joined by `|`; empty: any.
    pub models: String,
}

impl ShapeKey {
    /// What a placed replica takes: its devices and the share of each, and the models its
    /// request allowed.
    pub fn of_allocation(alloc: &Allocation) -> Self {
        let share = alloc.devices.iter().map(|d| d.share_milli).max();
        Self {
            compute_milli: alloc.compute_milli,
            gpu_milli: share.map_or(0, |s| s.min(MILLI_PER_DEVICE)),
            gpus: alloc.devices.len() as u32,
            models: alloc.models.join("|"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Group {
    count: u64,
    memory_sum: u128,
}

/// How many requests of each shape, kept as requests come and go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeCounts {
    groups: BTreeMap<ShapeKey, Group>,
    total: u64,
    /// Bumped on every change, so a reader can tell whether to look again.
    changes: u64,
}

impl ShapeCounts {
    pub fn add(&mut self, key: ShapeKey, memory_bytes: u64) {
        let g = self.groups.entry(key).or_default();
        g.count += 1;
        g.memory_sum += u128::from(memory_bytes);
        self.total += 1;
        self.changes += 1;
    }

    /// Forgets one request counted by `add` with the same arguments.
    pub fn remove(&mut self, key: &ShapeKey, memory_bytes: u64) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        g.count -= 1;
        g.memory_sum = g.memory_sum.saturating_sub(u128::from(memory_bytes));
        if g.count == 0 {
            self.groups.remove(key);
        }
        self.total -= 1;
        self.changes += 1;
    }

    pub fn add_allocation(&mut self, alloc: &Allocation) {
        self.add(ShapeKey::of_allocation(alloc), alloc.memory_bytes);
    }

    pub fn remove_allocation(&mut self, alloc: &Allocation) {
        self.remove(&ShapeKey::of_allocation(alloc), alloc.memory_bytes);
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Changes so far (never decreases).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The most frequent shapes (equal counts: the larger key first, as the paper's artifact)
    /// until they cover `coverage` of the requests, each weighted by its frequency.
    pub fn typical(&self, coverage: f64) -> Vec<TypicalShape> {
        self.most_frequent(coverage, usize::MAX)
    }

    /// `typical`, at most `limit` shapes.
    pub fn most_frequent(&self, coverage: f64, limit: usize) -> Vec<TypicalShape> {
        let mut sorted: Vec<(&ShapeKey, &Group)> = self.groups.iter().collect();
        sorted.sort_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then_with(|| kb.cmp(ka)));
        let total = self.total as f64;
        let mut covered = 0.0;
        let mut out = Vec::new();
        for (key, g) in sorted.into_iter().take(limit) {
            if covered >= coverage * total {
                break;
            }
            covered += g.count as f64;
            let memory = (g.memory_sum / u128::from(g.count.max(1))) as u64;
            let mut shape = TypicalShape::new(
                key.compute_milli,
                memory,
                key.gpus,
                key.gpu_milli,
                g.count as f64 / total,
            );
            shape.models = ModelFilter {
                allowed: key
                    .models
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

    /// Every shape counted, the largest accelerator demand first, at most `limit`: the
    /// candidates for protection (`mix::protected`).
    pub fn largest(&self, limit: usize) -> Vec<TypicalShape> {
        let mut all = self.typical(1.0);
        all.sort_by(largest_first);
        all.truncate(limit);
        all
    }

    /// `shapes` (taken from this mix) with `prior` counted as `prior_count` requests more: the
    /// prior (a generic mix) stands in while the cluster has run little, and fades as it runs
    /// more.
    pub fn with_prior(
        &self,
        shapes: Vec<TypicalShape>,
        prior: &[TypicalShape],
        prior_count: f64,
    ) -> Vec<TypicalShape> {
        let own = self.total as f64;
        let prior_total: f64 = prior.iter().map(|s| s.weight).sum();
        if prior_total <= 0.0 || prior_count <= 0.0 {
            return shapes;
        }
        if self.total == 0 {
            return prior.to_vec();
        }
        let mut out: Vec<TypicalShape> = shapes
            .into_iter()
            .map(|mut s| {
                s.weight *= own / (own + prior_count);
                s
            })
            .collect();
        out.extend(prior.iter().map(|s| TypicalShape {
            weight: s.weight / prior_total * prior_count / (own + prior_count),
            ..s.clone()
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::DeviceBinding;
    use uni_core::units::MIB;

    use super::*;

    fn key(cpu: u64, gpus: u32, milli: u32) -> ShapeKey {
        ShapeKey {
            compute_milli: cpu,
            gpu_milli: milli,
            gpus,
            models: String::new(),
        }
    }

    #[test]
    fn most_frequent_shapes_until_covered() {
        let mut mix = ShapeCounts::default();
        for _ in 0..6 {
            mix.add(key(4000, 1, 500), 1024 * MIB);
        }
        for _ in 0..3 {
            mix.add(key(8000, 1, 1000), 2048 * MIB);
        }
        mix.add(key(2000, 0, 0), 0);
        let shapes = mix.typical(0.85);
        assert_eq!(shapes.len(), 2);
        assert_eq!((shapes[0].compute_milli, shapes[0].gpu_milli), (4000, 500));
        assert!((shapes[0].weight - 0.6).abs() < 1e-9);
        assert_eq!(shapes[0].memory_bytes, 1024 * MIB);
        assert_eq!(shapes[1].memory_bytes, 2048 * MIB);
        assert_eq!(mix.typical(0.95).len(), 3);
        assert_eq!(mix.most_frequent(0.95, 1).len(), 1);
        let largest = mix.largest(2);
        assert_eq!((largest[0].gpu_milli, largest[1].gpu_milli), (1000, 500));
    }

    #[test]
    fn allocations_count_while_they_exist() {
        let mut mix = ShapeCounts::default();
        let alloc = Allocation {
            compute_milli: 4000,
            memory_bytes: 8 * MIB,
            devices: vec![DeviceBinding {
                share_milli: 250,
                ..DeviceBinding::default()
            }],
            models: vec!["A100".into(), "H100".into()],
            ..Allocation::default()
        };
        mix.add_allocation(&alloc);
        mix.add_allocation(&alloc);
        let shapes = mix.typical(1.0);
        assert_eq!(shapes.len(), 1);
        assert_eq!((shapes[0].gpus, shapes[0].gpu_milli), (1, 250));
        assert_eq!(shapes[0].models.allowed, vec!["A100", "H100"]);
        mix.remove_allocation(&alloc);
        assert_eq!(mix.total(), 1);
        mix.remove_allocation(&alloc);
        assert_eq!(mix.total(), 0);
        assert!(mix.typical(1.0).is_empty());
        // Forgetting what was never counted changes nothing.
        mix.remove_allocation(&alloc);
        assert_eq!((mix.total(), mix.changes()), (0, 4));
    }

    #[test]
    fn the_prior_fades_as_the_mix_grows() {
        let prior = [TypicalShape::new(8000, 0, 1, 1000, 2.0)];
        let mut mix = ShapeCounts::default();
        assert_eq!(mix.with_prior(mix.typical(1.0), &prior, 100.0), prior);
        for _ in 0..299 {
            mix.add(key(2000, 1, 250), 0);
        }
        mix.add(key(8000, 8, 1000), 0);
        let blended = mix.with_prior(mix.most_frequent(1.0, 1), &prior, 100.0);
        assert_eq!(blended.len(), 2);
        assert_eq!(blended[0].gpu_milli, 250);
        // The dropped shape keeps its share of the total: 299 of 300 + 100.
        assert!((blended[0].weight - 299.0 / 400.0).abs() < 1e-9);
        assert!((blended[1].weight - 0.25).abs() < 1e-9);
    }
}
