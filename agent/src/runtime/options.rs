//! How the runtime treats replica processes: log rotation, grace period, crash-restart backoff,
//! what happens to them when the agent stops, and who they run as by default.

use std::time::Duration;

use super::run_spec::RunAs;

/// What happens to replica processes when the agent stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnShutdown {
    /// Keep running; the next agent re-adopts them (the default: an agent upgrade or restart
    /// does not touch workloads).
    #[default]
    Leave,
    /// Stop them gracefully (dev mode; always so without a shim).
    Stop,
}

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Grace period of inference replicas (training jobs carry their own).
    pub default_grace: Duration,
    /// First restart delay of a crashing inference replica; doubles per crash.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A run that lasted this long resets the backoff.
    pub backoff_reset_after: Duration,
    pub on_shutdown: OnShutdown,
    /// Who replicas run as when their template names no user or group (never root).
    pub run_as: RunAs,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            log_max_bytes: crate::logs::DEFAULT_MAX_BYTES,
            log_max_files: crate::logs::DEFAULT_MAX_FILES,
            default_grace: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            backoff_reset_after: Duration::from_secs(600),
            on_shutdown: OnShutdown::Leave,
            run_as: RunAs::NOBODY,
        }
    }
}
