//! How the runtime treats replica processes: log rotation, grace period, crash-restart backoff,
//! what happens to them when the agent stops, who they run as by default, and when they are
//! fenced.

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

/// With [`DEFAULT_FENCE_GRACE`], a fenced replica is gone 20 s after the lease expired, 10 s
/// before the scheduler's default node grace period (30 s) lets it run elsewhere.
pub const DEFAULT_FENCE_AFTER: Duration = Duration::from_secs(10);
pub const DEFAULT_FENCE_GRACE: Duration = Duration::from_secs(10);

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
    /// Who replicas run as when their template names no user or group (never root), unless
    /// `namespace_users` gives each namespace its own.
    pub run_as: RunAs,
    /// Ids handed to namespaces, one each, for replicas whose template names no user;
    /// `None`: they all run as `run_as`.
    pub namespace_users: Option<std::ops::RangeInclusive<u32>>,
    /// Training replicas stop once the node's lease has been lost this long; `None`: never.
    pub fence_after: Option<Duration>,
    /// Inference replicas are fenced too (and start again once the lease is held).
    pub fence_inference: bool,
    /// Longest grace period a fenced replica gets, whatever its own.
    pub fence_grace: Duration,
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
            namespace_users: Some(super::namespace_users::DEFAULT_RANGE),
            fence_after: Some(DEFAULT_FENCE_AFTER),
            fence_inference: false,
            fence_grace: DEFAULT_FENCE_GRACE,
        }
    }
}
