//! Replica (or worker) counts: what the resource asks for and what Universal has, compared
//! on their own so that a change of counts alone becomes a ScaleWorkload call.

use uni_proto::v1 as pb;

/// Counts in Universal's terms. `desired` is None where the operator does not own it: for
/// training jobs (Universal has no desired count) and for autoscaled services (Universal's
/// autoscaler moves it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: Option<u32>,
    pub min: u32,
    pub max: u32,
}

impl Counts {
    /// The counts a Universal workload has now.
    pub fn of(w: &pb::Workload) -> Counts {
        match &w.spec {
            Some(pb::workload::Spec::Inference(s)) => {
                let r = s.replicas.unwrap_or_default();
                Counts {
                    desired: Some(r.desired.unwrap_or(r.min)),
                    min: r.min,
                    max: r.max,
                }
            }
            Some(pb::workload::Spec::Training(s)) => {
                let w = s.workers.unwrap_or_default();
                Counts {
                    desired: None,
                    min: w.min,
                    max: w.max,
                }
            }
            None => Counts::default(),
        }
    }

    /// Whether `observed` differs from these (wanted) counts in a field the operator owns.
    pub fn differs_from(&self, observed: &Counts) -> bool {
        self.min != observed.min
            || self.max != observed.max
            || self.desired.is_some_and(|d| observed.desired != Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unowned_desired_count_is_ignored() {
        let observed = Counts {
            desired: Some(4),
            min: 1,
            max: 8,
        };
        let autoscaled = Counts {
            desired: None,
            min: 1,
            max: 8,
        };
        assert!(!autoscaled.differs_from(&observed));
        let fixed = Counts {
            desired: Some(3),
            ..autoscaled
        };
        assert!(fixed.differs_from(&observed));
        let wider = Counts {
            max: 9,
            ..autoscaled
        };
        assert!(wider.differs_from(&observed));
    }
}
