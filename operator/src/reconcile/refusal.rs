//! What a call refused by Universal means for the reconcile, by step and gRPC code: one pure
//! table for every mirrored kind.

use tonic::Code;

use super::decide::Step;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Universal changed since it was read (created concurrently, e.g. by a previous leader;
    /// changed or gone before an update): observe again and decide anew.
    Reobserve,
    /// Universal refuses the spec: reported in the status with this reason, not retried.
    Reject(&'static str),
    /// The object still has dependents (a queue used by workloads): warn, retry at resync.
    InUse,
    /// Anything else fails the reconcile; the controller retries it with backoff.
    Fail,
}

pub fn refusal(step: &Step, code: Code) -> Refusal {
    match (step, code) {
        (Step::Create, Code::AlreadyExists) => Refusal::Reobserve,
        (Step::Update { .. } | Step::Scale { .. }, Code::Aborted | Code::NotFound) => {
            Refusal::Reobserve
        }
        (Step::Create | Step::Update { .. }, Code::InvalidArgument) => {
            Refusal::Reject("InvalidSpec")
        }
        (Step::Scale { .. }, Code::InvalidArgument) => Refusal::Reject("InvalidScale"),
        (Step::Delete { .. }, Code::FailedPrecondition) => Refusal::InUse,
        _ => Refusal::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Counts;

    const UPDATE: Step = Step::Update { expected: 7 };
    const DELETE: Step = Step::Delete { expected: 7 };

    fn scale() -> Step {
        Step::Scale {
            counts: Counts::default(),
            expected: 7,
        }
    }

    #[test]
    fn races_are_observed_again() {
        assert_eq!(
            refusal(&Step::Create, Code::AlreadyExists),
            Refusal::Reobserve
        );
        for step in [UPDATE, scale()] {
            assert_eq!(refusal(&step, Code::Aborted), Refusal::Reobserve);
            assert_eq!(refusal(&step, Code::NotFound), Refusal::Reobserve);
        }
    }

    #[test]
    fn invalid_specs_are_rejected_with_a_reason() {
        assert_eq!(
            refusal(&Step::Create, Code::InvalidArgument),
            Refusal::Reject("InvalidSpec")
        );
        assert_eq!(
            refusal(&UPDATE, Code::InvalidArgument),
            Refusal::Reject("InvalidSpec")
        );
        assert_eq!(
            refusal(&scale(), Code::InvalidArgument),
            Refusal::Reject("InvalidScale")
        );
    }

    #[test]
    fn deletion_waits_while_in_use() {
        assert_eq!(refusal(&DELETE, Code::FailedPrecondition), Refusal::InUse);
        // A changed version on delete is an error, not a race to re-decide.
        assert_eq!(refusal(&DELETE, Code::Aborted), Refusal::Fail);
    }

    #[test]
    fn everything_else_fails() {
        // Only the codes that mean a race are observed again.
        assert_eq!(refusal(&Step::Create, Code::NotFound), Refusal::Fail);
        assert_eq!(refusal(&Step::Create, Code::Aborted), Refusal::Fail);
        assert_eq!(refusal(&UPDATE, Code::AlreadyExists), Refusal::Fail);
        assert_eq!(refusal(&UPDATE, Code::FailedPrecondition), Refusal::Fail);
        for code in [Code::Unavailable, Code::PermissionDenied, Code::Internal] {
            assert_eq!(refusal(&Step::Create, code), Refusal::Fail);
            assert_eq!(refusal(&UPDATE, code), Refusal::Fail);
            assert_eq!(refusal(&DELETE, code), Refusal::Fail);
        }
    }
}
