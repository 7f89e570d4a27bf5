//! The one error type of `uni-agent`; mapped to a gRPC status in one place ([`From<Error>`] for
//! [`tonic::Status`]).

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] uni_core::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("hardware discovery: {0}")]
    Discovery(String),
    #[error("nvml: {0}")]
    Nvml(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("profile {path}: {reason}")]
    Profile { path: String, reason: String },
    #[error("config: {0}")]
    Config(String),
    /// A replica's process could not be started.
    #[error("cannot start: {0}")]
    Launch(String),
    #[error("corrupt state {path}: {reason}")]
    State { path: String, reason: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("server: {0}")]
    Server(String),
}

impl Error {
    /// An I/O error with what was being done, e.g. `reading /proc/cpuinfo`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// An I/O error about `path`: `{what} {path}`.
    pub fn at(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        Self::io(format!("{what} {}", path.display()))
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => tonic::Status::not_found(m),
            Error::Config(m) => tonic::Status::invalid_argument(m),
            Error::Store(uni_core::Error::Invalid(f)) => {
                tonic::Status::invalid_argument(f.to_string())
            }
            Error::Store(uni_core::Error::Unavailable(m)) => tonic::Status::unavailable(m),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
