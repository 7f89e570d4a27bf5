//! The scheduler's error type, and the one place where errors become gRPC statuses.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] uni_core::Error),
    /// This replica lost (or never had) leadership; its leader-only writes were refused.
    #[error("not the leader")]
    NotLeader,
    /// The server is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The request is valid but the system is not in a state that allows it (e.g. deleting a
    /// queue that workloads still use).
    #[error("{0}")]
    FailedPrecondition(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        use uni_core::Error as C;
        let code = match &e {
            Error::Core(c) => match c {
                C::Invalid(_) => Code::InvalidArgument,
                C::NotFound(_) => Code::NotFound,
                C::AlreadyExists(_) => Code::AlreadyExists,
                C::Conflict(_) => Code::Aborted,
                C::Compacted { .. } => Code::OutOfRange,
                C::LeaseNotFound(_) => Code::FailedPrecondition,
                C::Unavailable(_) => Code::Unavailable,
                C::TooLarge(_) | C::NoSpace(_) => Code::ResourceExhausted,
                C::Corrupt { .. } | C::Catalog(_) | C::Tls(_) | C::Internal(_) => Code::Internal,
            },
            Error::NotLeader | Error::ShuttingDown => Code::Unavailable,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
        };
        let message = match e {
            // The core error's text starts with "invalid request: "; the code already says so.
            Error::Core(C::Invalid(fields)) => fields.to_string(),
            other => other.to_string(),
        };
        Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_every_field() {
        let mut errs = uni_core::error::FieldErrors::default();
        errs.push("metadata.name", "must not be empty");
        errs.push("spec.workers.min", "must be <= spec.workers.max");
        let status: Status = Error::from(uni_core::Error::Invalid(errs)).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "metadata.name: must not be empty; spec.workers.min: must be <= spec.workers.max"
        );
        let status: Status = Error::from(uni_core::Error::Conflict("stale".into())).into();
        assert_eq!(status.code(), Code::Aborted);
    }
}
