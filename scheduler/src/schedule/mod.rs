//! The leader's scheduling loop: plan under the cache lock, commit outside it, repeat when
//! the cache changes or a timer (backoff, node grace) comes due.

mod admission;
mod autoscale;
mod backoff;
mod commit;
mod drain;
mod elastic;
mod events;
mod expiry;
mod gauges;
mod inference;
mod lifecycle;
mod order;
mod pass;
mod placing;
pub mod plan;
mod preempt;
mod status;
mod stopping;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uni_core::store::{Compare, KvStore};

use crate::cache::Cache;
use crate::error::Result;
use crate::metrics::Metrics;
pub use admission::tree as admission_tree;
pub use commit::{allocation_key, Committed, Committer};
pub use pass::Plan;
pub use plan::{PlanConfig, Planner, Preemption, QueueOrder};

/// How often gateways publish their load.
fn publish_tick() -> Duration {
    crate::gateway::publish::TICK
}

/// How often the cluster gauges are recomputed.
const GAUGE_PERIOD: Duration = Duration::from_secs(1);

pub struct Scheduler {
    pub cache: Arc<Cache>,
    pub store: Arc<dyn KvStore>,
    pub metrics: Arc<Metrics>,
    pub max_in_flight: usize,
}

impl Scheduler {
    /// Schedules until `cancel` fires (then finishes the commits in flight) or leadership is
    /// lost (`Err(NotLeader)`).
    pub async fn run(
        &self,
        planner: &mut Planner,
        fence: Compare,
        cancel: CancellationToken,
    ) -> Result<()> {
        let mut committer = Committer::new(
            self.store.clone(),
            fence,
            self.metrics.clone(),
            self.max_in_flight,
        );
        let mut last_gauges = Instant::now();
        let mut gauges_stale = true;
        loop {
            if cancel.is_cancelled() {
                let done = committer.drain().await?;
                self.record(done);
                return Ok(());
            }
            // Register for change notifications before planning, so none is missed.
            planner.refresh_event_lease(&*self.store).await;
            let changed = self.cache.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (plan, wake) = {
                let mut st = self.cache.lock();
                if gauges_stale && last_gauges.elapsed() >= GAUGE_PERIOD {
                    gauges::refresh(&self.metrics, &st);
                    last_gauges = Instant::now();
                    gauges_stale = false;
                }
                planner.plan(&mut st, Instant::now())
            };
            if !plan.is_empty() {
                let done = committer.submit(plan).await?;
                self.record(done);
                gauges_stale = true;
                continue;
            }
            // Refresh the gauges once things settle, even if nothing else happens.
            let wake = if gauges_stale {
                let due = last_gauges + GAUGE_PERIOD;
                Some(wake.map_or(due, |w| w.min(due)))
            } else {
                wake
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = changed => gauges_stale = true,
                _ = sleep => {}
                Some(done) = committer.next(), if committer.in_flight() > 0 => {
                    self.record(vec![done?]);
                }
            }
        }
    }

    fn record(&self, done: Vec<Committed>) {
        let now = uni_core::model::UnixMillis::now().0;
        for c in done {
            for (_, created) in &c.placed {
                self.metrics.placements.inc();
                let secs = (now - created).max(0) as f64 / 1000.0;
                self.metrics.submit_to_placed.observe(secs);
            }
        }
    }
}
