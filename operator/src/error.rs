//! The operator's one error type.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error("universal API: {0}")]
    Universal(#[from] tonic::Status),
    #[error("connecting to universal at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("encoding YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{what} is missing from the object")]
    MissingField { what: &'static str },
    /// A step that the reconciler retries later rather than an outright failure, e.g. a
    /// workload still shutting down in Universal.
    #[error("{reason}; retrying in {after:?}")]
    Retry { reason: String, after: Duration },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
