//! What each scheduler replica's inference gateway measures, published for the leader's
//! autoscaler: per service, the load averaged over its windows, and per replica what is in
//! flight (so a draining replica is stopped only once it is idle).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::time::UnixMillis;

/// One gateway's measurements, under `gateway-load/{identity}` with a lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayLoad {
    /// When it was measured.
    pub at: UnixMillis,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceLoad>,
    /// Requests in flight, by allocation id; replicas with none are left out.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub in_flight: BTreeMap<String, u32>,
}

/// One service's load through one gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceLoad {
    pub namespace: String,
    pub name: String,
    /// Averaged over the service's stable window.
    pub stable: Signals,
    /// Averaged over its panic window.
    pub panic: Signals,
    /// Requests held because no replica is ready (scale from zero).
    pub waiting: u32,
}

/// The gateway's load signals over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Signals {
    /// Mean requests in flight (time-weighted).
    pub concurrency: f64,
    /// Requests started per second.
    pub rps: f64,
    /// A scraped Prometheus gauge, summed over the ready replicas (services that scale on
    /// one; only the leader's gateway scrapes).
    pub metric: f64,
}

impl std::ops::Add for Signals {
    type Output = Signals;

    fn add(self, o: Signals) -> Signals {
        Signals {
            concurrency: self.concurrency + o.concurrency,
            rps: self.rps + o.rps,
            // One gateway scrapes; another's is stale for at most a lease after a failover.
            metric: self.metric.max(o.metric),
        }
    }
}
