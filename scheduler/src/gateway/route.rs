//! Which service a request is for, and the replicas that may take it.
//!
//! Paths are `/NAMESPACE/SERVICE/REST`: the gateway strips `/NAMESPACE/SERVICE` and the
//! replica sees `/REST` (with the query), so a service needs no knowledge of its prefix
//! (it is passed in `X-Forwarded-Prefix` for links).

use std::net::{IpAddr, SocketAddr};

use uni_core::model::{ReplicaPhase, ReplicaView, WorkloadRef, WorkloadSpec};

use crate::cache::State;

/// A request's service and what to send the replica.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub service: WorkloadRef,
    /// Path and query for the replica, starting with '/'.
    pub rest: String,
}

/// Splits `/ns/name/rest?query`; `None` when the path names no service.
pub fn parse(path_and_query: &str) -> Option<Route> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut parts = path.strip_prefix('/')?.splitn(3, '/');
    let namespace = parts.next().filter(|s| !s.is_empty())?;
    let name = parts.next().filter(|s| !s.is_empty())?;
    let mut rest = format!("/{}", parts.next().unwrap_or(""));
    if let Some(q) = query {
        rest.push('?');
        rest.push_str(q);
    }
    Some(Route {
        service: WorkloadRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        },
        rest,
    })
}

/// One replica that may take requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The replica's allocation: in-flight counts follow it, not the address.
    pub allocation: String,
    pub addr: SocketAddr,
}

/// Why a service has no replica to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBackend {
    /// No inference service of that name.
    Unknown,
    /// It exists; no replica passes readiness (starting, scaled to zero, or all stopping).
    NoneReady,
}

/// Whether requests for `service` wait for a replica when none is ready: it scales itself
/// (from zero, or up), so one is coming.
pub fn holds(st: &State, service: &WorkloadRef) -> bool {
    st.workload(service).is_some_and(|w| match &w.value.spec {
        WorkloadSpec::Inference(s) => s.autoscaling.is_some() && s.replicas.max > 0,
        WorkloadSpec::Training(_) => false,
    })
}

/// The replicas of `service` that pass readiness and are not being stopped: a replica told
/// to stop (preemption, a resize) or draining (scaled down) takes no new requests while it
/// finishes the ones it has.
pub fn backends(st: &State, service: &WorkloadRef) -> Result<Vec<Backend>, NoBackend> {
    let w = st.workload(service).ok_or(NoBackend::Unknown)?;
    if !matches!(w.value.spec, WorkloadSpec::Inference(_)) || w.value.meta.deleted.is_some() {
        return Err(NoBackend::Unknown);
    }
    let out: Vec<Backend> = st
        .allocations_of(service)
        .into_iter()
        .filter(|a| a.notice.is_none() && a.draining.is_none())
        .filter_map(|a| {
            let node = st.node(&a.node)?;
            let view =
                ReplicaView::new(a, &node.value.status.address, st.status(service, a.replica));
            let ip: IpAddr = view.address.parse().ok()?;
            (view.phase == ReplicaPhase::Ready && view.port != 0).then(|| Backend {
                allocation: a.id.clone(),
                addr: SocketAddr::new(ip, view.port),
            })
        })
        .collect();
    if out.is_empty() {
        return Err(NoBackend::NoneReady);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ns: &str, name: &str, rest: &str) -> Option<Route> {
        Some(Route {
            service: WorkloadRef {
                namespace: ns.into(),
                name: name.into(),
            },
            rest: rest.into(),
        })
    }

    #[test]
    fn paths_name_a_namespace_and_a_service() {
        assert_eq!(
            parse("/ml/llm/v1/chat?x=1"),
            route("ml", "llm", "/v1/chat?x=1")
        );
        assert_eq!(parse("/ml/llm"), route("ml", "llm", "/"));
        assert_eq!(parse("/ml/llm/"), route("ml", "llm", "/"));
        assert_eq!(parse("/ml/llm?stream=1"), route("ml", "llm", "/?stream=1"));
        assert_eq!(parse("/ml"), None);
        assert_eq!(parse("/"), None);
        assert_eq!(parse("//llm/x"), None);
    }
}
