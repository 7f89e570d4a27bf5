//! Registers `nodes/{node}` under the agent's lease and keeps it right: rewritten when the
//! inventory or capacity changes, when the lease is lost (etcd unreachable for longer than
//! its TTL) and when someone else rewrote or deleted the key (the scheduler marks a lost node
//! NotReady). Every write is a read-modify-write with a compare on the key's `mod_revision`,
//! keeping what the API owns: `spec` (cordon, taints) and `status.draining`, and what the
//! scheduler derives (`allocated`, `devices`, `replicas`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::model::condition::{set_condition, types};
use uni_core::model::{Condition, ConditionStatus, Node, ObjectMeta, UnixMillis};
use uni_core::store::keys::{NodeKey, TypedKey};
use uni_core::store::watcher::Event;
use uni_core::store::{
    codec, Compare, CompareOp, KeyValue, KvStore, LeaseId, LeaseKeeper, Revision, Txn, TxnOp,
    Watcher,
};
use uni_core::Backoff;

use crate::capacity::Valued;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Condition saying whether replicas get resource limits.
pub const RESOURCE_LIMITS: &str = "ResourceLimits";
/// Between failed attempts to register.
const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// Keys per range page; node values are a few KiB, and a response must stay under 4 MiB.
pub(crate) const NODE_PAGE: usize = 200;
const CAS_ATTEMPTS: usize = 10;

/// What the agent says about itself in the node's status.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub address: String,
    /// `http://ADDR:PORT` of the agent's gRPC server.
    pub agent_endpoint: String,
    pub agent_version: String,
    /// `Err(reason)` when replicas run without cgroup limits.
    pub limits: std::result::Result<String, String>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            name: String::new(),
            labels: BTreeMap::new(),
            address: String::new(),
            agent_endpoint: String::new(),
            agent_version: String::new(),
            limits: Ok(String::new()),
        }
    }
}

/// Produces a fresh valuation of the hardware (rediscovery), or `None` to keep the last.
pub type Rediscover = Arc<dyn Fn() -> Option<Valued> + Send + Sync>;

pub struct Registration {
    pub store: Arc<dyn KvStore>,
    pub identity: Identity,
    pub valued: Valued,
    pub lease_ttl: Duration,
    pub metrics: Metrics,
    pub rediscover: Option<(Rediscover, Duration)>,
    /// Revoke the lease on shutdown (the node disappears at once) instead of letting it expire.
    pub revoke_on_exit: bool,
    /// Told when the lease is lost and when it is held again, for fencing.
    pub lease_state: watch::Sender<Option<Instant>>,
}

/// The node as this agent would write it over `current` (what is stored, if anything).
pub fn merge(current: Option<Node>, identity: &Identity, valued: &Valued, now: UnixMillis) -> Node {
    let mut node = current.unwrap_or_default();
    let created = node.meta.created;
    node.meta = ObjectMeta {
        labels: identity.labels.clone(),
        created: if created.is_set() { created } else { now },
        ..ObjectMeta::cluster(identity.name.clone())
    };
    let s = &mut node.status;
    s.inventory = valued.inventory.clone();
    s.capacity = valued.capacity;
    s.allocatable = valued.allocatable;
    s.node_class = valued.node_class.clone();
    s.price_per_hour = valued.price_per_hour;
    s.ready = true;
    s.last_heartbeat = now;
    s.agent_version = identity.agent_version.clone();
    s.address = identity.address.clone();
    s.agent_endpoint = identity.agent_endpoint.clone();
    set_condition(
        &mut s.conditions,
        Condition::new(
            types::READY,
            ConditionStatus::True,
            "AgentReady",
            "uni-agent is running",
        ),
        now,
    );
    let limits = match &identity.limits {
        Ok(version) => Condition::new(
            RESOURCE_LIMITS,
            ConditionStatus::True,
            "Cgroups",
            format!("replicas run in cgroups {version} with cpu and memory limits"),
        ),
        Err(reason) => Condition::new(
            RESOURCE_LIMITS,
            ConditionStatus::False,
            "CgroupsUnavailable",
            format!("replicas run without cpu and memory limits: {reason}"),
        ),
    };
    set_condition(&mut s.conditions, limits, now);
    node
}

/// Writes the node under `lease`, keeping what others own; returns the revision written.
pub async fn write(
    store: &dyn KvStore,
    identity: &Identity,
    valued: &Valued,
    lease: LeaseId,
) -> Result<Revision> {
    let key = NodeKey::new(identity.name.as_str())?.format();
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(&key).await?;
        let (node, compare) = match &current {
            Some(kv) => (
                Some(codec::decode::<Node>(&key, &kv.value)?),
                Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision),
            ),
            None => (None, Compare::absent(key.as_str())),
        };
        let node = merge(node, identity, valued, UnixMillis::now());
        let txn = Txn::new().when([compare]).and_then([TxnOp::Put {
            key: key.clone(),
            value: codec::encode(&node)?,
            lease,
        }]);
        let resp = store.txn(txn).await?;
        if resp.succeeded {
            return Ok(resp.revision);
        }
    }
    Err(Error::Store(uni_core::Error::Conflict(format!(
        "{key}: changed concurrently {CAS_ATTEMPTS} times"
    ))))
}

/// Why the node is written again.
enum Again {
    LeaseLost,
    Changed,
    Rewritten,
    WatchEnded,
}

impl Registration {
    pub async fn run(mut self, cancel: CancellationToken) {
        let key = match NodeKey::new(self.identity.name.as_str()) {
            Ok(k) => k.format(),
            Err(e) => {
                warn!(error = %e, "invalid node name; not registering");
                return;
            }
        };
        let mut lease: Option<LeaseKeeper> = None;
        let mut backoff = RETRY;
        let mut registered_once = false;
        // A lost lease etcd may still hold (it restores leases after a restart): revoked once
        // the node is written under the new one, so its expiry cannot delete anything.
        let mut stale: Option<LeaseId> = None;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let keeper = match &lease {
                Some(l) => l,
                None => match LeaseKeeper::grant(self.store.clone(), self.lease_ttl).await {
                    Ok(l) => lease.insert(l),
                    Err(e) => {
                        self.metrics.store_error("lease_grant");
                        warn!(error = %e, "cannot reach the store to register; workloads keep running, retrying");
                        if !backoff.wait(&cancel).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            let id = keeper.id();
            let lost = keeper.lost();
            if let Err(e) = write(&*self.store, &self.identity, &self.valued, id).await {
                self.metrics.store_error("register");
                if matches!(e, Error::Store(uni_core::Error::LeaseNotFound(_)))
                    || lost.is_cancelled()
                {
                    // Gone, or expired while this loop retried: a new lease is needed.
                    self.lease_lost(keeper.expires());
                    stale = lease.take().map(|old| old.id());
                }
                warn!(error = %e, "registering the node failed; retrying");
                if !backoff.wait(&cancel).await {
                    break;
                }
                continue;
            }
            self.metrics.registered.set(1);
            self.lease_state.send_replace(None);
            if let Some(old) = stale.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), self.store.lease_revoke(old))
                    .await;
            }
            if !registered_once {
                info!(node = %self.identity.name, lease = id, "node registered");
                registered_once = true;
            }
            backoff.reset();
            match self.hold(&key, id, &lost, &cancel).await {
                None => break,
                Some(Again::LeaseLost) => {
                    self.metrics.registered.set(0);
                    if let Some(l) = &lease {
                        self.lease_lost(l.expires());
                    }
                    warn!(node = %self.identity.name, "lease lost (store unreachable too long); registering again");
                    stale = lease.take().map(|old| old.id());
                }
                Some(Again::Changed) => info!("hardware changed; rewriting the node"),
                Some(Again::Rewritten) => {
                    info!("node key rewritten or deleted by someone else; registering again")
                }
                Some(Again::WatchEnded) => {
                    if !backoff.wait(&cancel).await {
                        break;
                    }
                }
            }
        }
        self.metrics.registered.set(0);
        if let Some(l) = lease {
            if self.revoke_on_exit {
                let _ = tokio::time::timeout(Duration::from_secs(2), l.revoke()).await;
            }
            // Otherwise dropping the keeper stops renewing; the lease expires after its TTL.
        }
    }

    /// Notes the lease lost since `expired` (when it expired by this agent's clock), unless
    /// it already was.
    fn lease_lost(&self, expired: Instant) {
        self.lease_state.send_if_modified(|since| {
            let was_held = since.is_none();
            if was_held {
                *since = Some(expired.min(Instant::now()));
            }
            was_held
        });
    }

    /// Waits until the node must be written again; `None` on shutdown.
    async fn hold(
        &mut self,
        key: &str,
        lease: LeaseId,
        lost: &CancellationToken,
        cancel: &CancellationToken,
    ) -> Option<Again> {
        // Lists the key first: a change since our write shows in the listing.
        let mut watcher = Watcher::new(self.store.clone(), key).page_size(NODE_PAGE);
        let period = self
            .rediscover
            .as_ref()
            .map(|(_, p)| *p)
            .unwrap_or(Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = lost.cancelled() => return Some(Again::LeaseLost),
                _ = tick.tick() => {
                    if let Some((f, _)) = &self.rediscover {
                        let f = f.clone();
                        if let Ok(Some(v)) = tokio::task::spawn_blocking(move || f()).await {
                            if v.inventory != self.valued.inventory || v.capacity != self.valued.capacity || v.allocatable != self.valued.allocatable {
                                self.valued = v;
                                return Some(Again::Changed);
                            }
                        }
                    }
                }
                events = watcher.next() => match events {
                    Ok(events) => {
                        if events.iter().any(|e| rewritten(e, key, lease)) {
                            return Some(Again::Rewritten);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "watching the node key failed");
                        return Some(Again::WatchEnded);
                    }
                },
            }
        }
    }
}

/// Whether `event` shows our node key as not (or no longer) ours: a prefix watch of
/// `nodes/a` also sees `nodes/ab`, so only the exact key counts.
fn rewritten(event: &Event, key: &str, lease: LeaseId) -> bool {
    let ours = |kv: &KeyValue| {
        kv.lease == lease && codec::decode::<Node>(key, &kv.value).is_ok_and(|n| n.status.ready)
    };
    match event {
        Event::Restarted { kvs, .. } => !kvs.iter().any(|kv| kv.key == key && ours(kv)),
        Event::Applied(kv) => kv.key == key && !ours(kv),
        Event::Deleted(kv) => kv.key == key,
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{NodeSpec, Taint};

    use super::*;
    use crate::capacity::{value, Reserve};

    #[test]
    fn merge_keeps_spec_draining_and_derived_usage() {
        let catalog = uni_core::catalog::Catalog::builtin().unwrap();
        let valued = value(
            uni_core::model::Inventory {
                cpu: uni_core::model::CpuInfo {
                    threads: 4,
                    ..Default::default()
                },
                memory_bytes: 1 << 30,
                ..Default::default()
            },
            &catalog,
            Reserve::default(),
        );
        let mut stored = Node {
            spec: NodeSpec {
                cordoned: true,
                taints: vec![Taint::default()],
            },
            ..Node::default()
        };
        stored.status.draining = true;
        stored.status.ready = false;
        stored.status.replicas = 3;
        let identity = Identity {
            name: "n1".into(),
            address: "10.0.0.1".into(),
            agent_endpoint: "http://10.0.0.1:7072".into(),
            agent_version: "0.1.0".into(),
            limits: Err("not root".into()),
            ..Identity::default()
        };
        let node = merge(Some(stored.clone()), &identity, &valued, UnixMillis(5));
        assert_eq!(node.spec, stored.spec);
        assert!(node.status.draining && node.status.ready);
        assert_eq!(node.status.replicas, 3);
        assert_eq!(node.meta.name, "n1");
        assert_eq!(node.status.capacity.compute_milli, 4000);
        assert_eq!(node.status.agent_endpoint, "http://10.0.0.1:7072");
        let limits = node
            .status
            .conditions
            .iter()
            .find(|c| c.condition_type == RESOURCE_LIMITS)
            .unwrap();
        assert_eq!(limits.status, ConditionStatus::False);
    }
}
