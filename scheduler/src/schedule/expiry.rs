//! Finished training jobs are deleted once their time-to-live has passed: the job's
//! `ttl_seconds_after_finished`, else the scheduler's `--finished-ttl-seconds`. Each finished
//! job the leader reconciles waits here until it is due, then is reconciled again and deleted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uni_core::model::{UnixMillis, Workload, WorkloadRef, WorkloadSpec, MANAGED_BY};

#[derive(Default)]
pub struct Expiries {
    due: HashMap<WorkloadRef, Instant>,
}

impl Expiries {
    /// How long after finishing `w` is kept; `None`: for ever (not a training job, or one
    /// another system manages, such as the operator, which would submit it again).
    pub fn ttl(w: &Workload, default: Option<Duration>) -> Option<Duration> {
        let WorkloadSpec::Training(spec) = &w.spec else {
            return None;
        };
        if w.meta.labels.contains_key(MANAGED_BY) {
            return None;
        }
        match spec.ttl_seconds_after_finished {
            Some(s) => Some(Duration::from_secs(u64::from(s))),
            None => default,
        }
    }

    /// Whether `w`, finished at `completed`, is due at `now` (wall clock); when not, it is
    /// parked until it is (`at` is the monotonic clock of this pass).
    pub fn check(
        &mut self,
        r: &WorkloadRef,
        completed: UnixMillis,
        ttl: Duration,
        now: UnixMillis,
        at: Instant,
    ) -> bool {
        let kept = Duration::from_millis(now.millis_since(completed));
        if kept >= ttl {
            self.due.remove(r);
            return true;
        }
        // A time-to-live too long to represent is for ever.
        if let Some(due) = at.checked_add(ttl - kept) {
            self.due.insert(r.clone(), due);
        }
        false
    }

    pub fn forget(&mut self, r: &WorkloadRef) {
        self.due.remove(r);
    }

    /// Moves every job that is due into `queue`.
    pub fn release_due(&mut self, now: Instant, queue: &mut BTreeSet<WorkloadRef>) {
        self.due.retain(|r, due| {
            let waiting = *due > now;
            if !waiting {
                queue.insert(r.clone());
            }
            waiting
        });
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::TrainingJobSpec;

    #[test]
    fn a_job_waits_for_its_ttl_then_is_released() {
        let mut job = Workload {
            spec: WorkloadSpec::Training(TrainingJobSpec::default()),
            ..Workload::default()
        };
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(Expiries::ttl(&job, day), day);
        if let WorkloadSpec::Training(s) = &mut job.spec {
            s.ttl_seconds_after_finished = Some(10);
        }
        assert_eq!(Expiries::ttl(&job, day), Some(Duration::from_secs(10)));
        assert_eq!(Expiries::ttl(&Workload::default(), day), None);
        let mut managed = job.clone();
        managed
            .meta
            .labels
            .insert(MANAGED_BY.into(), "uni-operator".into());
        assert_eq!(Expiries::ttl(&managed, day), None);

        let mut e = Expiries::default();
        let r = WorkloadRef {
            namespace: "ns".into(),
            name: "job".into(),
        };
        let (t0, at) = (UnixMillis(1_000_000), Instant::now());
        let ttl = Duration::from_secs(10);
        assert!(!e.check(&r, t0, ttl, UnixMillis(1_004_000), at));
        assert_eq!(e.next_due(), Some(at + Duration::from_secs(6)));
        let mut q = BTreeSet::new();
        e.release_due(at + Duration::from_secs(5), &mut q);
        assert!(q.is_empty());
        e.release_due(at + Duration::from_secs(6), &mut q);
        assert!(q.contains(&r) && e.next_due().is_none());
        assert!(e.check(&r, t0, ttl, UnixMillis(1_010_000), at));
    }
}
