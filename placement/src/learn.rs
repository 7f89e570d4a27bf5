//! Learning the request mix: placement measures fragmentation against the shapes of what the
//! cluster runs (`mix::counts`), blended with a generic mix until the cluster has run enough to
//! speak for itself, prices device shares by all of them (`mix::prices`), and protects the
//! largest of them (`mix::protected`).

use std::time::{Duration, Instant};

use crate::mix::counts::{ShapeCounts, COVERAGE};
use crate::mix::Mix;
use crate::snapshot::Snapshot;
use crate::typical::{default_typical_shapes, TypicalShape};

/// How often the mix is read again: it moves slowly, and a change of protected shapes recounts
/// their hosts over every node.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The generic mix counts as this many replicas: it stands in while nothing runs, then the
/// cluster's own mix takes over. A heavier prior lingers and understates the stranding of
/// CPU-heavy work; none at all leaves the first placements without a mix (BENCHMARKS.md,
/// "Why each part is there").
pub const PRIOR_REPLICAS: f64 = 1.0;

/// Typical shapes at most: fragmentation is measured against each on every candidate node.
pub const MAX_TYPICAL: usize = 32;

/// Shapes, largest first, among which the protected ones are found (a pairwise comparison).
pub const MAX_PROTECTION_CANDIDATES: usize = 256;

/// Owns the learned [`Mix`]: reads what the cluster runs and keeps the snapshot counting the
/// hosts of the protected shapes.
pub struct MixLearner {
    /// The generic mix the learned one starts from and is blended with; empty: learn nothing.
    prior: Vec<TypicalShape>,
    mix: Mix,
    /// The counts' `changes()` when last read, and when.
    seen: Option<(u64, Instant)>,
}

impl MixLearner {
    /// Starts from `prior`, which stands in until the cluster runs something; an empty prior
    /// learns nothing (a policy that measures no mix).
    pub fn new(prior: Vec<TypicalShape>) -> Self {
        let mix = if prior.is_empty() {
            Mix::default()
        } else {
            Mix::of(prior.clone())
        };
        Self {
            prior,
            mix,
            seen: None,
        }
    }

    /// Starts from the generic mix (`typical::default_typical_shapes`).
    pub fn generic() -> Self {
        Self::new(default_typical_shapes())
    }

    /// The mix placement measures against now.
    pub fn mix(&self) -> &Mix {
        &self.mix
    }

    /// `learn` when `counts` changed and `REFRESH` has passed since they were last read; keeps
    /// the snapshot counting the hosts of the protected shapes either way.
    pub fn refresh(&mut self, counts: &ShapeCounts, snapshot: &mut Snapshot, now: Instant) {
        let due = match self.seen {
            None => true,
            Some((seen, at)) => seen != counts.changes() && now.duration_since(at) >= REFRESH,
        };
        if due {
            self.seen = Some((counts.changes(), now));
            self.learn(counts, snapshot);
        }
        // Also after the snapshot was rebuilt from a fresh listing.
        self.track(snapshot);
    }

    /// Sets the typical, priced and protected shapes from `counts` and the prior, and has
    /// `snapshot` count the hosts of the protected ones.
    pub fn learn(&mut self, counts: &ShapeCounts, snapshot: &mut Snapshot) {
        if self.prior.is_empty() {
            return;
        }
        let blend = |shapes| counts.with_prior(shapes, &self.prior, PRIOR_REPLICAS);
        let typical = blend(counts.most_frequent(COVERAGE, MAX_TYPICAL));
        let every = blend(counts.typical(1.0));
        let largest = blend(counts.largest(MAX_PROTECTION_CANDIDATES));
        self.mix = Mix::new(typical, &every, &largest);
        self.track(snapshot);
    }

    /// Has `snapshot` count the hosts of the protected shapes, unless it does.
    fn track(&self, snapshot: &mut Snapshot) {
        let protected = &self.mix.protected;
        if !protected.is_empty() && !snapshot.tracks(protected) {
            snapshot.track_capability(protected.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{Allocation, DeviceBinding};
    use uni_core::units::GIB;

    use super::*;

    /// What the scheduler's cache keeps: the shapes counted, and the snapshot.
    #[derive(Default)]
    struct State {
        counts: ShapeCounts,
        snapshot: Snapshot,
    }

    impl State {
        fn reserve(&mut self, alloc: Allocation) {
            self.counts.add_allocation(&alloc);
            self.snapshot.add_allocation(&alloc);
        }

        fn release(&mut self, alloc: &Allocation) {
            self.counts.remove_allocation(alloc);
            self.snapshot.remove_allocation(alloc);
        }
    }

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

    fn learned(mix: &Mix) -> Option<&TypicalShape> {
        mix.typical
            .iter()
            .find(|s| s.compute_milli == 96_000 && s.gpus == 8)
    }

    #[test]
    fn the_mix_follows_what_the_cluster_runs() {
        let mut st = State::default();
        let mut learner = MixLearner::generic();
        let prior = default_typical_shapes();
        let t0 = Instant::now();

        learner.refresh(&st.counts, &mut st.snapshot, t0);
        assert_eq!(
            learner.mix().typical,
            prior,
            "nothing runs: the prior alone"
        );
        assert!(st.snapshot.tracks(&learner.mix().protected));

        let allocs: Vec<Allocation> = (0..100)
            .map(|i| eight_gpu_alloc(&format!("a{i}")))
            .collect();
        for a in &allocs {
            st.reserve(a.clone());
        }
        // Not due yet: the mix is read at most every REFRESH.
        learner.refresh(&st.counts, &mut st.snapshot, t0 + REFRESH / 2);
        assert!(learned(learner.mix()).is_none());

        learner.refresh(&st.counts, &mut st.snapshot, t0 + REFRESH);
        let shape = learned(learner.mix()).expect("the running shape is typical");
        // 100 replicas against a prior worth PRIOR_REPLICAS.
        let own = 100.0 / (100.0 + PRIOR_REPLICAS);
        assert!((shape.weight - own).abs() < 1e-9, "{}", shape.weight);
        assert_eq!(shape.memory_bytes, 512 * GIB);
        // It is the largest shape now, so its hosts are protected and counted.
        assert_eq!(learner.mix().protected[0].compute_milli, 96_000);
        assert!(st.snapshot.tracks(&learner.mix().protected));

        // Released work leaves the mix.
        for a in &allocs {
            st.release(a);
        }
        learner.refresh(&st.counts, &mut st.snapshot, t0 + 2 * REFRESH);
        assert_eq!(learner.mix().typical, prior);

        // A rebuilt snapshot counts the protected shapes again.
        st.snapshot = Snapshot::default();
        learner.refresh(&st.counts, &mut st.snapshot, t0 + 2 * REFRESH);
        assert!(st.snapshot.tracks(&learner.mix().protected));
    }

    #[test]
    fn an_empty_prior_learns_nothing() {
        let mut st = State::default();
        st.reserve(eight_gpu_alloc("a"));
        let mut learner = MixLearner::new(Vec::new());
        learner.learn(&st.counts, &mut st.snapshot);
        assert_eq!(learner.mix(), &Mix::default());
    }

    #[test]
    fn shares_are_priced_by_every_shape_not_only_the_typical_ones() {
        let mut st = State::default();
        let mut learner = MixLearner::generic();
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
        learner.learn(&st.counts, &mut st.snapshot);
        let mix = learner.mix();
        assert!(mix.typical.iter().all(|s| s.gpu_milli != 470));
        assert!((mix.prices.value(470) - 0.5).abs() < 1e-6);
        assert!(mix.prices.loss(530, 470) < 1e-6);
    }
}
