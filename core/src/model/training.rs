//! Training jobs: gangs of workers that run to completion, elastic between min and max.

use serde::{Deserialize, Serialize};

use super::priority;
use super::queue::DEFAULT_QUEUE;
use super::template::ReplicaTemplate;

/// torchrun's default rendezvous port.
pub const DEFAULT_MASTER_PORT: u16 = 29500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingJobSpec {
    pub template: ReplicaTemplate,
    pub workers: WorkerCount,
    pub master_port: u16,
    pub retry: RetryPolicy,
    pub preemptible: bool,
    /// Seconds between SIGTERM and SIGKILL, so the job can checkpoint.
    pub grace_period_seconds: u32,
    pub priority: i32,
    pub queue: String,
    /// Deleted this long after it finished; `None`: the scheduler's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u32>,
}

impl TrainingJobSpec {
    pub const DEFAULT_GRACE_PERIOD_SECONDS: u32 = 30;
}

impl Default for TrainingJobSpec {
    fn default() -> Self {
        Self {
            template: ReplicaTemplate::default(),
            workers: WorkerCount::default(),
            master_port: DEFAULT_MASTER_PORT,
            retry: RetryPolicy::default(),
            preemptible: false,
            grace_period_seconds: Self::DEFAULT_GRACE_PERIOD_SECONDS,
            priority: priority::NORMAL,
            queue: DEFAULT_QUEUE.to_string(),
            ttl_seconds_after_finished: None,
        }
    }
}

/// Gang of `min` workers placed at once; grown toward `max` when capacity frees up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerCount {
    pub min: u32,
    pub max: u32,
}

impl Default for WorkerCount {
    fn default() -> Self {
        Self { min: 1, max: 1 }
    }
}

/// A worker failure restarts the whole gang, with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_restarts: u32,
    pub backoff_seconds: u32,
    pub max_backoff_seconds: u32,
}

impl RetryPolicy {
    pub const DEFAULT_MAX_RESTARTS: u32 = 3;
    pub const DEFAULT_BACKOFF_SECONDS: u32 = 10;
    pub const DEFAULT_MAX_BACKOFF_SECONDS: u32 = 300;

    /// Delay before restart number `restart` (0-based): backoff doubled per earlier restart,
    /// capped at the maximum.
    pub fn backoff_for(&self, restart: u32) -> u32 {
        let factor = 1u32.checked_shl(restart.min(31)).unwrap_or(u32::MAX);
        self.backoff_seconds
            .saturating_mul(factor)
            .min(self.max_backoff_seconds)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_restarts: Self::DEFAULT_MAX_RESTARTS,
            backoff_seconds: Self::DEFAULT_BACKOFF_SECONDS,
            max_backoff_seconds: Self::DEFAULT_MAX_BACKOFF_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let r = RetryPolicy::default();
        assert_eq!(r.backoff_for(0), 10);
        assert_eq!(r.backoff_for(1), 20);
        assert_eq!(r.backoff_for(5), 300);
        assert_eq!(r.backoff_for(40), 300);
    }
}
