//! Exponential backoff for everything that retries: store reconnects, watches, registration,
//! status writes, crash restarts, reconciles. One type, so every component doubles and caps
//! the same way.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// `base * 2^(failures-1)`, capped at `max`; counts consecutive failures until reset.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// The wait after `failures` consecutive failures (none for zero).
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl((failures - 1).min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Records one more failure and returns how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay_after(self.failures)
    }

    /// Forgets the failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and sleeps its delay; false when `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let d = self.fail();
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(b.delay_after(0), Duration::ZERO);
        assert_eq!(b.fail(), Duration::from_millis(500));
        assert_eq!(b.fail(), Duration::from_secs(1));
        assert_eq!(b.fail(), Duration::from_secs(2));
        for _ in 0..40 {
            b.fail();
        }
        assert_eq!(b.fail(), Duration::from_secs(30));
        assert_eq!(b.failures(), 44);
        b.reset();
        assert_eq!(b.fail(), Duration::from_millis(500));
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(b.delay_after(u32::MAX), Duration::from_secs(300));
    }

    #[tokio::test]
    async fn wait_returns_false_when_cancelled() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(!b.wait(&cancel).await);
        assert_eq!(b.failures(), 1);
    }
}
