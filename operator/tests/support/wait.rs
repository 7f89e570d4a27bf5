//! Waiting for something the test caused: poll with a deadline, never a fixed sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Bound on every wait (generous: the test machine is small and shared).
pub const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

/// Polls `probe` until it returns Some, failing the test with `what` (and the last
/// observation) at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
