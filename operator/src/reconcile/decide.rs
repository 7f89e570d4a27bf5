//! The pure decision core of reconciliation: from what the resource says and what Universal
//! holds, the one next step. No I/O; the reconciler executes the step, observes again and
//! asks again until nothing is left to do.

use uni_proto::v1 as pb;

use crate::convert::Counts;
use crate::labels;

/// The Kubernetes side, as far as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceState {
    /// metadata.deletionTimestamp is set.
    pub deleting: bool,
    /// Our finalizer is present.
    pub has_finalizer: bool,
    /// Its status records a training job that finished (Succeeded or Failed): once Universal
    /// has deleted it (after its TTL) it is not created again, which would run it again.
    pub finished: bool,
}

/// Who a Universal object with the resource's name belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Created by the operator for a resource of this kind.
    Operator,
    /// Created by the operator for a resource of another kind with the same name.
    OtherKind(String),
    /// Not created by the operator (e.g. with unictl).
    Unmanaged,
}

/// The Universal side, summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub owner: Owner,
    /// Fingerprint annotation of the spec last written by the operator.
    pub fingerprint: Option<String>,
    pub counts: Counts,
    /// Deletion has been requested and the object is shutting down.
    pub terminating: bool,
    pub resource_version: i64,
}

impl Observed {
    /// Summarises a Universal workload for a resource of kind `kind`.
    pub fn workload(w: &pb::Workload, kind: &str) -> Self {
        let meta = w.meta.clone().unwrap_or_default();
        Self {
            owner: owner(&meta, kind),
            fingerprint: meta.annotations.get(labels::FINGERPRINT).cloned(),
            counts: Counts::of(w),
            terminating: meta.deletion_time.is_some(),
            resource_version: meta.resource_version,
        }
    }

    /// Summarises a Universal queue. Queues that exist without the operator (the built-in
    /// "default" queue, or one made with unictl) are adopted: the resource is the source of
    /// truth, and queues hold no running work of their own.
    pub fn queue(q: &pb::Queue) -> Self {
        let meta = q.meta.clone().unwrap_or_default();
        Self {
            owner: Owner::Operator,
            fingerprint: meta.annotations.get(labels::FINGERPRINT).cloned(),
            counts: Counts::default(),
            terminating: meta.deletion_time.is_some(),
            resource_version: meta.resource_version,
        }
    }
}

fn owner(meta: &pb::ObjectMeta, kind: &str) -> Owner {
    if meta.labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::OPERATOR) {
        return Owner::Unmanaged;
    }
    match meta.labels.get(labels::KIND) {
        Some(k) if k != kind => Owner::OtherKind(k.clone()),
        _ => Owner::Operator,
    }
}

/// What the resource wants, as far as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub fingerprint: &'a str,
    pub counts: Counts,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add the finalizer before anything exists in Universal, so deletion can never skip
    /// the cleanup.
    AddFinalizer,
    Create,
    /// Replace the spec (fingerprint differs), expecting this resource version.
    Update {
        expected: i64,
    },
    /// Only the counts differ.
    Scale {
        counts: Counts,
        expected: i64,
    },
    /// Universal matches the resource.
    InSync,
    /// The resource cannot be mirrored as written; Universal keeps what it has.
    Reject {
        message: String,
    },
    /// The name is taken in Universal by something the operator does not own for this
    /// resource; it is left alone.
    Conflict {
        message: String,
    },
    /// The Universal object is shutting down; look again shortly.
    WaitForDeletion,
    Delete {
        expected: i64,
    },
    /// The Universal object is gone (or was never ours): let Kubernetes delete the resource.
    RemoveFinalizer,
    /// Being deleted and our finalizer is already gone.
    Nothing,
    /// A finished job Universal no longer holds: its status stays as it was.
    Finished,
}

/// The next step for one resource. `wanted` is Err with the reason when the resource cannot
/// be turned into a Universal spec.
pub fn decide(
    resource: ResourceState,
    wanted: Result<Wanted<'_>, &str>,
    observed: Option<&Observed>,
) -> Step {
    if resource.deleting {
        if !resource.has_finalizer {
            return Step::Nothing;
        }
        return match observed {
            None => Step::RemoveFinalizer,
            Some(o) if o.owner != Owner::Operator => Step::RemoveFinalizer,
            Some(o) if o.terminating => Step::WaitForDeletion,
            Some(o) => Step::Delete {
                expected: o.resource_version,
            },
        };
    }
    if !resource.has_finalizer {
        return Step::AddFinalizer;
    }
    let wanted = match wanted {
        Ok(w) => w,
        Err(reason) => {
            return Step::Reject {
                message: reason.to_string(),
            }
        }
    };
    let Some(o) = observed else {
        return if resource.finished {
            Step::Finished
        } else {
            Step::Create
        };
    };
    match &o.owner {
        Owner::OtherKind(kind) => {
            return Step::Conflict {
                message: format!("a {kind} of the same name owns the Universal workload"),
            }
        }
        Owner::Unmanaged => {
            return Step::Conflict {
                message: "a Universal object of the same name exists that the operator does \
                          not manage; delete it or rename the resource"
                    .into(),
            }
        }
        Owner::Operator => {}
    }
    if o.terminating {
        return Step::WaitForDeletion;
    }
    if o.fingerprint.as_deref() != Some(wanted.fingerprint) {
        return Step::Update {
            expected: o.resource_version,
        };
    }
    if wanted.counts.differs_from(&o.counts) {
        return Step::Scale {
            counts: wanted.counts,
            expected: o.resource_version,
        };
    }
    Step::InSync
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: ResourceState = ResourceState {
        deleting: false,
        has_finalizer: true,
        finished: false,
    };
    const DELETING: ResourceState = ResourceState {
        deleting: true,
        has_finalizer: true,
        finished: false,
    };

    fn counts(min: u32, desired: u32, max: u32) -> Counts {
        Counts {
            desired: Some(desired),
            min,
            max,
        }
    }

    fn wanted(fp: &str, c: Counts) -> Result<Wanted<'_>, &'static str> {
        Ok(Wanted {
            fingerprint: fp,
            counts: c,
        })
    }

    fn ours(fp: &str, c: Counts) -> Observed {
        Observed {
            owner: Owner::Operator,
            fingerprint: Some(fp.into()),
            counts: c,
            terminating: false,
            resource_version: 42,
        }
    }

    #[test]
    fn a_finished_job_universal_deleted_is_not_created_again() {
        let finished = ResourceState {
            finished: true,
            ..LIVE
        };
        assert_eq!(
            decide(finished, wanted("a", counts(1, 1, 1)), None),
            Step::Finished
        );
        // While Universal still holds it, it is mirrored as usual.
        let o = ours("a", counts(1, 1, 1));
        assert_eq!(
            decide(finished, wanted("a", counts(1, 1, 1)), Some(&o)),
            Step::InSync
        );
    }

    #[test]
    fn finalizer_comes_first() {
        let fresh = ResourceState {
            deleting: false,
            has_finalizer: false,
            finished: false,
        };
        assert_eq!(
            decide(fresh, wanted("a", counts(1, 1, 1)), None),
            Step::AddFinalizer
        );
    }

    #[test]
    fn missing_workload_is_created_again() {
        // Also the path when Universal lost or someone deleted the workload.
        assert_eq!(
            decide(LIVE, wanted("a", counts(1, 1, 1)), None),
            Step::Create
        );
    }

    #[test]
    fn spec_change_updates_count_change_scales() {
        let o = ours("a", counts(1, 1, 1));
        assert_eq!(
            decide(LIVE, wanted("a", counts(1, 1, 1)), Some(&o)),
            Step::InSync
        );
        assert_eq!(
            decide(LIVE, wanted("b", counts(1, 1, 1)), Some(&o)),
            Step::Update { expected: 42 }
        );
        assert_eq!(
            decide(LIVE, wanted("a", counts(3, 3, 3)), Some(&o)),
            Step::Scale {
                counts: counts(3, 3, 3),
                expected: 42
            }
        );
        // An unannotated workload of ours (written by an older operator) is updated.
        let old = Observed {
            fingerprint: None,
            ..o
        };
        assert_eq!(
            decide(LIVE, wanted("a", counts(1, 1, 1)), Some(&old)),
            Step::Update { expected: 42 }
        );
    }

    #[test]
    fn autoscaler_owned_desired_count_is_not_fought() {
        let o = ours("a", counts(1, 5, 8));
        let autoscaled = Counts {
            desired: None,
            min: 1,
            max: 8,
        };
        assert_eq!(
            decide(LIVE, wanted("a", autoscaled), Some(&o)),
            Step::InSync
        );
    }

    #[test]
    fn invalid_spec_is_rejected_without_touching_universal() {
        let o = ours("a", counts(1, 1, 1));
        assert_eq!(
            decide(LIVE, Err("spec.x: bad"), Some(&o)),
            Step::Reject {
                message: "spec.x: bad".into()
            }
        );
    }

    #[test]
    fn foreign_objects_are_never_touched() {
        let unmanaged = Observed {
            owner: Owner::Unmanaged,
            ..ours("a", counts(1, 1, 1))
        };
        assert!(matches!(
            decide(LIVE, wanted("a", counts(1, 1, 1)), Some(&unmanaged)),
            Step::Conflict { .. }
        ));
        let other = Observed {
            owner: Owner::OtherKind("TrainingJob".into()),
            ..ours("a", counts(1, 1, 1))
        };
        let Step::Conflict { message } = decide(LIVE, wanted("a", counts(1, 1, 1)), Some(&other))
        else {
            panic!("conflict expected");
        };
        assert!(message.contains("TrainingJob"));
        // Deleting the resource leaves them in place too.
        assert_eq!(
            decide(DELETING, Err("ignored"), Some(&unmanaged)),
            Step::RemoveFinalizer
        );
    }

    #[test]
    fn deletion_removes_the_workload_before_the_finalizer() {
        let o = ours("a", counts(1, 1, 1));
        assert_eq!(
            decide(DELETING, wanted("a", counts(1, 1, 1)), Some(&o)),
            Step::Delete { expected: 42 }
        );
        let stopping = Observed {
            terminating: true,
            ..o
        };
        assert_eq!(
            decide(DELETING, wanted("a", counts(1, 1, 1)), Some(&stopping)),
            Step::WaitForDeletion
        );
        assert_eq!(
            decide(DELETING, wanted("a", counts(1, 1, 1)), None),
            Step::RemoveFinalizer
        );
        let gone = ResourceState {
            deleting: true,
            has_finalizer: false,
            finished: false,
        };
        assert_eq!(
            decide(gone, wanted("a", counts(1, 1, 1)), None),
            Step::Nothing
        );
        // An invalid spec does not block deletion.
        assert_eq!(decide(DELETING, Err("bad"), None), Step::RemoveFinalizer);
    }

    #[test]
    fn ownership_is_read_from_labels() {
        let mut meta = pb::ObjectMeta::default();
        assert_eq!(owner(&meta, "TrainingJob"), Owner::Unmanaged);
        meta.labels
            .insert(labels::MANAGED_BY.into(), labels::OPERATOR.into());
        meta.labels
            .insert(labels::KIND.into(), "InferenceService".into());
        assert_eq!(owner(&meta, "InferenceService"), Owner::Operator);
        assert_eq!(
            owner(&meta, "TrainingJob"),
            Owner::OtherKind("InferenceService".into())
        );
    }
}
