//! Leader-only work. Every replica campaigns; the one elected runs the scheduling loop (which
//! also drives node lifecycle) until it is cancelled or loses its lease, then steps down.

mod compaction;
pub mod election;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::store::KvStore;

use crate::cache::Cache;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::schedule::{PlanConfig, Planner, Scheduler};
use uni_placement::Policy;

pub struct LeaderConfig {
    pub identity: String,
    pub lease_ttl: Duration,
    pub plan: PlanConfig,
    pub max_in_flight: usize,
    /// How often the leader compacts the store; zero for never.
    pub compaction_interval: Duration,
}

/// Campaigns and leads, over and over, until `cancel` fires.
pub async fn run(
    store: Arc<dyn KvStore>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    config: LeaderConfig,
    cancel: CancellationToken,
) {
    let scheduler = Scheduler {
        cache: cache.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        max_in_flight: config.max_in_flight,
    };
    while !cancel.is_cancelled() {
        let leadership =
            match election::campaign(&store, &config.identity, config.lease_ttl, &cancel).await {
                Ok(l) => l,
                Err(e) => {
                    if !cancel.is_cancelled() {
                        warn!(error = %e, "campaign failed; retrying");
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    continue;
                }
            };
        metrics.is_leader.set(1);
        // Schedule only from a picture that includes every write of earlier leaders.
        let caught_up = tokio::select! {
            ok = cache.wait_for(leadership.term, Duration::from_secs(60)) => ok,
            _ = cancel.cancelled() => false,
        };
        if !caught_up {
            if !cancel.is_cancelled() {
                warn!("cache did not catch up with the election; stepping down");
            }
            metrics.is_leader.set(0);
            leadership.resign(&store).await;
            continue;
        }
        let mut planner = Planner::new(config.plan.clone(), Policy::default(), metrics.clone());
        {
            // Everything is due for a look after an election.
            let mut st = cache.lock();
            st.mark_all_dirty();
        }
        let lost = leadership.lost();
        let term = cancel.child_token();
        let compactor = tokio::spawn(compaction::run(
            store.clone(),
            metrics.clone(),
            config.compaction_interval,
            term.clone(),
        ));
        let outcome = tokio::select! {
            // On cancel the loop finishes its commits in flight and returns.
            r = scheduler.run(&mut planner, leadership.fence(), cancel.clone()) => r,
            _ = lost.cancelled() => Err(Error::NotLeader),
        };
        term.cancel();
        let _ = compactor.await;
        metrics.is_leader.set(0);
        match outcome {
            Ok(()) => info!("stepping down"),
            Err(e) => warn!(error = %e, "lost leadership"),
        }
        // Reservations not confirmed by the watch must not linger in this replica's picture:
        // drop them and list again (commits that did land come back from etcd).
        cache.lock().clear_inflight();
        cache.resync();
        leadership.resign(&store).await;
    }
}
