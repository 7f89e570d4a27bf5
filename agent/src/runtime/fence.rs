//! Self-fencing. An agent that cannot renew its node's lease cannot tell a store outage from
//! a partition of its own: the scheduler may already have marked the node lost and placed its
//! replicas elsewhere. Once the lease has been lost for the configured bound, supervisors stop
//! the replicas that must never run twice (training ranks, and inference replicas if so
//! configured), well before the scheduler's node grace period ends.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Since when the node's lease is lost (`None` while it is held), kept by the registration.
pub type LeaseLost = watch::Receiver<Option<Instant>>;

/// A lease channel as an agent starts: lost until the first registration.
pub fn lease_channel() -> (watch::Sender<Option<Instant>>, LeaseLost) {
    watch::channel(Some(Instant::now()))
}

/// Resolves once the lease has been lost for `after` without being held again in between;
/// returns for how long. Never resolves once the registration has ended (agent stopping).
pub async fn lost_for(mut rx: LeaseLost, after: Duration) -> Duration {
    loop {
        let since = *rx.borrow_and_update();
        let changed = match since {
            None => rx.changed().await,
            Some(t) => {
                // A bound too far to represent never arrives.
                let due = t.checked_add(after);
                tokio::select! {
                    _ = sleep_until(due) => return t.elapsed(),
                    c = rx.changed() => c,
                }
            }
        };
        if changed.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the lease is held; never once the registration has ended.
pub async fn held(mut rx: LeaseLost) {
    if rx.wait_for(Option::is_none).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fences_only_after_the_bound_and_not_once_held_again() {
        let (tx, rx) = lease_channel();
        let after = Duration::from_secs(15);
        // Held again before the bound: no fencing, even much later.
        tx.send(None).unwrap();
        let fence = tokio::spawn(lost_for(rx.clone(), after));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!fence.is_finished());
        // Lost: fenced after the bound, not before.
        tx.send(Some(Instant::now())).unwrap();
        tokio::time::sleep(Duration::from_secs(14)).await;
        assert!(!fence.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lost = fence.await.unwrap();
        assert!(lost >= after, "{lost:?}");
        // Lost and held again within the bound: a new loss starts the count anew.
        let fence = tokio::spawn(lost_for(rx.clone(), after));
        tx.send(None).unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!fence.is_finished());
        let back = tokio::spawn(held(rx.clone()));
        tx.send(Some(Instant::now())).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!back.is_finished());
        tx.send(None).unwrap();
        back.await.unwrap();
    }
}
