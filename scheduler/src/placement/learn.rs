//! Learning the request mix: a policy measures fragmentation against the shapes of what the
//! cluster runs (`mix::ShapeCounts`), blended with the policy's generic mix until the cluster
//! has run enough to speak for itself, prices device shares by all of them
//! (`score::gap_value`), and protects the largest of them.

use std::time::{Duration, Instant};

use super::mix::{ShapeCounts, COVERAGE};
use super::policy::{Policy, TypicalShape};
use super::score::scarcity;
use super::snapshot::Snapshot;

/// How often the mix is read again: it moves slowly, and a change of protected shapes recounts
/// their hosts over every node.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The generic mix counts as this many replicas: it stands in while nothing runs, then the
/// cluster's own mix takes over. A heavier prior lingers: its shapes carry less host CPU per
/// device than CPU-heavy work does, so it understates stranding (measured on an openb variant
/// with 30% CPU-only pods, learning every 100 placements: 14.24% unallocated worth 100
/// replicas, 14.12% worth 30, 13.67% worth 1; the default trace 4.12, 4.13, 4.11; with no
/// prior at all the first placements have no mix, default 4.30).
pub const PRIOR_REPLICAS: f64 = 1.0;

/// Typical shapes at most: fragmentation is measured against each on every candidate node.
pub const MAX_TYPICAL: usize = 32;

/// Shapes, largest first, among which the protected ones are found (a pairwise comparison).
pub const MAX_PROTECTION_CANDIDATES: usize = 256;

pub struct MixLearner {
    /// The policy's own typical shapes, the prior.
    prior: Vec<TypicalShape>,
    /// The mix's `changes()` when last read, and when.
    seen: Option<(u64, Instant)>,
}

impl MixLearner {
    pub fn new(policy: &Policy) -> Self {
        Self {
            prior: policy.typical_shapes.clone(),
            seen: None,
        }
    }

    /// `learn` when `mix` changed and `REFRESH` has passed since it was last read; keeps the
    /// snapshot counting the hosts of the protected shapes either way.
    pub fn refresh(
        &mut self,
        policy: &mut Policy,
        mix: &ShapeCounts,
        snapshot: &mut Snapshot,
        now: Instant,
    ) {
        let due = match self.seen {
            None => true,
            Some((seen, at)) => seen != mix.changes() && now.duration_since(at) >= REFRESH,
        };
        if due {
            self.seen = Some((mix.changes(), now));
            self.learn(policy, mix, snapshot);
        }
        // Also after the snapshot was rebuilt from a fresh listing.
        track(policy, snapshot);
    }

    /// Sets `policy`'s typical and protected shapes from `mix` and the prior, and has
    /// `snapshot` count the hosts of the protected ones.
    pub fn learn(&self, policy: &mut Policy, mix: &ShapeCounts, snapshot: &mut Snapshot) {
        if self.prior.is_empty() {
            return;
        }
        let typical = mix.most_frequent(COVERAGE, MAX_TYPICAL);
        let every = mix.with_prior(mix.typical(1.0), &self.prior, PRIOR_REPLICAS);
        policy.set_mix(mix.with_prior(typical, &self.prior, PRIOR_REPLICAS), &every);
        let largest = mix.largest(MAX_PROTECTION_CANDIDATES);
        policy.protected_shapes =
            scarcity::protected(&mix.with_prior(largest, &self.prior, PRIOR_REPLICAS));
        track(policy, snapshot);
    }
}

/// Has `snapshot` count the hosts of `policy`'s protected shapes, unless it does.
fn track(policy: &Policy, snapshot: &mut Snapshot) {
    if policy.protects() && !snapshot.tracks(&policy.protected_shapes) {
        snapshot.track_capability(policy.protected_shapes.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uni_core::catalog::Catalog;
    use uni_core::model::{Allocation, DeviceBinding};
    use uni_core::units::GIB;

    use super::*;
    use crate::cache::State;

    fn eight_gpu_alloc(id: &str) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "ns".into(),
            workload: "train".into(),
            node: "n".into(),
            compute_milli: 96_000,
            memory_bytes: 512 * GIB,
            devices: (0..8)
                .map(|index| DeviceBinding {
                    index,
                    share_milli: 1000,
                    ..DeviceBinding::default()
                })
                .collect(),
            ..Allocation::default()
        }
    }

    fn learned(policy: &Policy) -> Option<&TypicalShape> {
        policy
            .typical_shapes
            .iter()
            .find(|s| s.compute_milli == 96_000 && s.gpus == 8)
    }

    #[test]
    fn the_policy_follows_what_the_cluster_runs() {
        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        let mut policy = Policy::default();
        let prior = policy.typical_shapes.clone();
        let mut learner = MixLearner::new(&policy);
        let t0 = Instant::now();

        learner.refresh(&mut policy, &st.mix, &mut st.snapshot, t0);
        assert_eq!(
            policy.typical_shapes, prior,
            "nothing runs: the prior alone"
        );
        assert!(st.snapshot.tracks(&policy.protected_shapes));

        for i in 0..100 {
            st.reserve(eight_gpu_alloc(&format!("a{i}")));
        }
        // Not due yet: the mix is read at most every REFRESH.
        learner.refresh(&mut policy, &st.mix, &mut st.snapshot, t0 + REFRESH / 2);
        assert!(learned(&policy).is_none());

        learner.refresh(&mut policy, &st.mix, &mut st.snapshot, t0 + REFRESH);
        let shape = learned(&policy).expect("the running shape is typical");
        // 100 replicas against a prior worth PRIOR_REPLICAS.
        let own = 100.0 / (100.0 + PRIOR_REPLICAS);
        assert!((shape.weight - own).abs() < 1e-9, "{}", shape.weight);
        assert_eq!(shape.memory_bytes, 512 * GIB);
        // It is the largest shape now, so its hosts are protected and counted.
        assert_eq!(policy.protected_shapes[0].compute_milli, 96_000);
        assert!(st.snapshot.tracks(&policy.protected_shapes));

        // Released work leaves the mix.
        for i in 0..100 {
            st.release(&format!("a{i}"));
        }
        learner.refresh(&mut policy, &st.mix, &mut st.snapshot, t0 + 2 * REFRESH);
        assert_eq!(policy.typical_shapes, prior);

        // A rebuilt state counts the policy's protected shapes again.
        st.reset();
        learner.refresh(&mut policy, &st.mix, &mut st.snapshot, t0 + 2 * REFRESH);
        assert!(st.snapshot.tracks(&policy.protected_shapes));
    }

    #[test]
    fn shares_are_priced_by_every_shape_not_only_the_typical_ones() {
        let mut st = State::new(Arc::new(Catalog::builtin().expect("catalog")));
        let mut policy = Policy::default();
        let learner = MixLearner::new(&policy);
        // MAX_TYPICAL common whole-GPU shapes (one CPU count each), then 0.47 shares spread
        // over as many rare shapes: none of them typical, yet together they are what shares
        // are priced by (two to a device: half a device each).
        let mut n = 0;
        let mut add = |st: &mut State, cpu: u64, share: u32, count: usize| {
            for _ in 0..count {
                let mut a = eight_gpu_alloc(&format!("a{n}"));
                n += 1;
                a.compute_milli = cpu;
                a.devices.truncate(1);
                a.devices[0].share_milli = share;
                st.reserve(a);
            }
        };
        for i in 0..MAX_TYPICAL as u64 {
            add(&mut st, 1000 + i, 1000, 20);
        }
        for i in 0..MAX_TYPICAL as u64 {
            add(&mut st, 5000 + i, 470, 1);
        }
        learner.learn(&mut policy, &st.mix, &mut st.snapshot);
        assert!(policy.typical_shapes.iter().all(|s| s.gpu_milli != 470));
        assert!((policy.gap_values.value(470) - 0.5).abs() < 1e-6);
        assert!(policy.gap_values.loss(530, 470) < 1e-6);
    }
}
