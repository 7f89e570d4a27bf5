//! The scheduler's error type, and the one place where errors become gRPC statuses.

use tonic::{Code, Status};
use uni_core::error::shorten;

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

/// Longest status message sent.
pub const MAX_STATUS_MESSAGE: usize = 4096;

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
        // The message travels in a response header, which clients cap (16 KiB in hyper).
        Status::new(code, shorten(message, MAX_STATUS_MESSAGE))
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

    #[test]
    fn long_messages_are_cut_to_fit_a_header() {
        let mut errs = uni_core::error::FieldErrors::default();
        for i in 0..64 {
            errs.push(format!("spec.template.env[{i}].name"), "é".repeat(10_000));
        }
        let status: Status = Error::from(uni_core::Error::Invalid(errs)).into();
        assert!(
            status.message().len() <= MAX_STATUS_MESSAGE + 32,
            "{}",
            status.message().len()
        );
        assert!(status
            .message()
            .starts_with("spec.template.env[0].name: éé"));
        assert!(status.message().ends_with("more bytes)"));
    }
}
