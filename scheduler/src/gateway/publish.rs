//! Publishes this replica's gateway load for the leader's autoscaler, once a second while
//! there is any and at once when a request starts waiting for a replica. The key lives
//! under a lease kept alive while it exists, so the load of a replica that is gone stops
//! counting within the lease's TTL; an idle gateway writes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uni_core::model::{GatewayLoad, UnixMillis};
use uni_core::store::keys::{GatewayLoadKey, TypedKey};
use uni_core::store::{codec, KvStore, LeaseId};

use super::Gateway;

/// How often buckets close and the load is published.
pub const TICK: Duration = Duration::from_secs(1);
/// The key outlives its replica by at most this.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// An unchanged load is written again this often, so its age shows it is current.
const REFRESH: Duration = Duration::from_secs(3);

pub async fn run(
    store: Arc<dyn KvStore>,
    identity: String,
    gateway: Arc<Gateway>,
    is_leader: prometheus::IntGauge,
    cancel: CancellationToken,
) {
    let key = match GatewayLoadKey::new(identity) {
        Ok(k) => k.format(),
        Err(e) => {
            warn!(error = %e, "gateway load is not published: the identity is not a valid key");
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut lease: Option<LeaseId> = None;
    let mut last: Option<(GatewayLoad, Instant)> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                if is_leader.get() == 1 {
                    gateway.scrape().await;
                } else {
                    gateway.meters.forget_metrics();
                }
                gateway.meters.tick(Instant::now());
            }
            _ = gateway.meters.urgent.notified() => {}
        }
        let load = gateway.load();
        if load.services.is_empty() && load.in_flight.is_empty() {
            if last.take().is_some() {
                if let Err(e) = store.delete(&key).await {
                    debug!(error = %e, "gateway load not deleted; its lease expires");
                }
            }
            continue;
        }
        if let Some(id) = lease {
            if store.lease_keep_alive(id).await.is_err() {
                lease = None;
            }
        }
        let unchanged = last
            .as_ref()
            .is_some_and(|(l, at)| *l == load && at.elapsed() < REFRESH);
        if unchanged && lease.is_some() {
            continue;
        }
        let id = match lease {
            Some(id) => id,
            None => match store.lease_grant(LEASE_TTL).await {
                Ok(id) => *lease.insert(id),
                Err(e) => {
                    debug!(error = %e, "no lease for the gateway load; trying again");
                    continue;
                }
            },
        };
        let stamped = GatewayLoad {
            at: UnixMillis::now(),
            ..load.clone()
        };
        let Ok(bytes) = codec::encode(&stamped) else {
            continue;
        };
        match store.put(&key, bytes, id).await {
            Ok(_) => last = Some((load, Instant::now())),
            Err(e) => {
                debug!(error = %e, "gateway load not written; trying again");
                lease = None;
            }
        }
    }
    if last.is_some() {
        let _ = store.delete(&key).await;
    }
    if let Some(id) = lease {
        let _ = store.lease_revoke(id).await;
    }
}
