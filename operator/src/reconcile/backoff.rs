//! Per-object exponential backoff for failed reconciles, reset by a success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `key` and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> Duration {
        let n = {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = f.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        delay(self.base, self.max, n)
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// base * 2^(failures-1), capped at max.
pub fn delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(b.failed("a"), Duration::from_millis(500));
        assert_eq!(b.failed("a"), Duration::from_secs(1));
        assert_eq!(b.failed("a"), Duration::from_secs(2));
        assert_eq!(b.failed("b"), Duration::from_millis(500));
        for _ in 0..40 {
            b.failed("a");
        }
        assert_eq!(b.failed("a"), Duration::from_secs(30));
        b.succeeded("a");
        assert_eq!(b.failed("a"), Duration::from_millis(500));
    }
}
