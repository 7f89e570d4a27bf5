//! The inference gateway: one stable address for every InferenceService, served by each
//! scheduler replica from its watch-fed cache, so any replica (leader or not) routes and no
//! extra component runs. `http(s)://GATEWAY/NAMESPACE/SERVICE/...` goes to a Ready replica
//! of the service, the one with the fewest requests in flight. It speaks HTTP/1.1 and
//! HTTP/2 (h2c, or ALPN over TLS) to clients and HTTP/1.1 to replicas; bodies stream both
//! ways (token streaming). It serves TLS and checks callers exactly as the API does: a
//! caller needs `get` on workloads in the namespace, and its `Authorization` header is not
//! passed on, so cluster credentials never reach a replica.

mod balance;
mod meter;
pub mod publish;
mod route;
mod scrape;
mod upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{IntCounterVec, IntGaugeVec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tracing::{debug, info, warn};
use uni_core::model::{GatewayLoad, Resource, UnixMillis, Verb, WorkloadRef, WorkloadSpec};
use uni_core::tls::server::{incoming, PeerInfo, ReloadingAcceptor};

use balance::Balancer;
use meter::Meters;
use route::NoBackend;
use upstream::{Pool, SendError};

use crate::auth::Auth;
use crate::cache::Cache;

/// How long connections in flight may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);
/// How long a request waits for an autoscaled service's first ready replica (a cold start,
/// from zero), and how many may wait per service.
const HOLD_TIMEOUT: Duration = Duration::from_secs(120);
const HOLD_LIMIT: u32 = 1000;

type Body = BoxBody<Bytes, hyper::Error>;

/// A service's replicas (or why it has none) as of a cache revision.
type Routes = HashMap<
    WorkloadRef,
    (
        uni_core::store::Revision,
        Result<Vec<route::Backend>, NoBackend>,
    ),
>;

/// What the gateway counts, registered with the scheduler's metrics.
#[derive(Clone)]
pub struct GatewayMetrics {
    /// Requests answered, by namespace, service and status code.
    pub requests: IntCounterVec,
    /// Requests in flight, by namespace and service.
    pub in_flight: IntGaugeVec,
}

pub struct Gateway {
    cache: Arc<Cache>,
    auth: Arc<Auth>,
    balancer: Balancer,
    meters: Meters,
    pool: Pool,
    /// Each service's replicas as of a cache revision, so a request does not rebuild them.
    routes: std::sync::Mutex<Routes>,
    scraper: scrape::Scraper,
    metrics: GatewayMetrics,
}

impl Gateway {
    pub fn new(cache: Arc<Cache>, auth: Arc<Auth>, metrics: GatewayMetrics) -> Arc<Self> {
        Arc::new(Self {
            cache,
            auth,
            balancer: Balancer::default(),
            meters: Meters::default(),
            pool: Pool::default(),
            routes: Default::default(),
            scraper: scrape::client(),
            metrics,
        })
    }

    /// What this gateway measures now, for the autoscaler (undated).
    pub fn load(&self) -> GatewayLoad {
        let services = {
            let st = self.cache.lock();
            self.meters.loads(|r| {
                let a = st.workload(r).and_then(|w| match &w.value.spec {
                    WorkloadSpec::Inference(s) => s.autoscaling.clone(),
                    WorkloadSpec::Training(_) => None,
                });
                let a = a.unwrap_or_default();
                (a.stable_window_seconds, a.panic_window_seconds)
            })
        };
        GatewayLoad {
            at: UnixMillis::default(),
            services,
            in_flight: self.balancer.busy(),
        }
    }

    /// The replicas of `service` and whether it holds requests, from the cache's revision
    /// (recomputed when the cache changed).
    fn route(&self, service: &WorkloadRef) -> (Result<Vec<route::Backend>, NoBackend>, bool) {
        let revision = self.cache.revision();
        {
            let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, found)) = routes.get(service) {
                if *at == revision && found.is_ok() {
                    return (found.clone(), false);
                }
            }
        }
        let (found, holds) = {
            let st = self.cache.lock();
            (route::backends(&st, service), route::holds(&st, service))
        };
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.len() > 10_000 {
            routes.clear();
        }
        routes.insert(service.clone(), (revision, found.clone()));
        (found, holds)
    }

    /// The replicas to try for `service`, holding the request while an autoscaled service
    /// has none ready (from zero, or all starting) until one is, or [`HOLD_TIMEOUT`].
    async fn backends(&self, service: &WorkloadRef) -> Result<Vec<route::Backend>, Response<Body>> {
        let (ns, name) = (&service.namespace, &service.name);
        let mut held: Option<meter::Waiting> = None;
        let deadline = tokio::time::Instant::now() + HOLD_TIMEOUT;
        loop {
            // Registered before looking, so a change between the look and the wait wakes it.
            let changed = self.cache.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (found, holds) = self.route(service);
            match found {
                Ok(b) => return Ok(b),
                Err(NoBackend::Unknown) => {
                    let msg = format!("no inference service {ns}/{name}");
                    return Err(text(StatusCode::NOT_FOUND, &msg));
                }
                Err(NoBackend::NoneReady) if holds => {
                    if held.is_none() {
                        held = self.meters.wait(service, HOLD_LIMIT);
                        if held.is_none() {
                            let msg = format!(
                                "inference service {ns}/{name} has no ready replica and \
                                 {HOLD_LIMIT} requests waiting for one"
                            );
                            return Err(unavailable(&msg));
                        }
                    }
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(deadline) => {
                            let msg = format!(
                                "inference service {ns}/{name}: no replica became ready within {}s",
                                HOLD_TIMEOUT.as_secs()
                            );
                            return Err(unavailable(&msg));
                        }
                    }
                }
                Err(NoBackend::NoneReady) => {
                    let msg = format!("inference service {ns}/{name} has no ready replica");
                    return Err(unavailable(&msg));
                }
            }
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, peer: &PeerInfo) -> Response<Body> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some(route) = route::parse(path) else {
            return text(
                StatusCode::NOT_FOUND,
                "the gateway serves /NAMESPACE/SERVICE/PATH for inference services",
            );
        };
        let (ns, name) = (route.service.namespace.clone(), route.service.name.clone());
        if let Err((code, msg)) = self.authorize(req.headers(), peer, &ns).await {
            return self.count(&ns, &name, text(code, &msg));
        }
        let backends = match self.backends(&route.service).await {
            Ok(b) => self.balancer.order(b),
            Err(resp) => return self.count(&ns, &name, resp),
        };
        let prefix = format!("/{ns}/{name}");
        prepare(&mut req, &route.rest, &prefix, peer);
        let gauge = self.metrics.in_flight.with_label_values(&[&ns, &name]);
        gauge.inc();
        // Counted out however the request ends, the client going away included.
        let gauge = GaugeGuard(gauge);
        let metered = self.meters.start(&route.service);
        // Counted in on the first choice: a connect retry moves the count below.
        let mut held = self.balancer.start(&backends[0]);
        let sent = self.pool.send(&backends, req.map(BodyExt::boxed)).await;
        let resp = match sent {
            Ok((i, mut resp)) => {
                if i != 0 {
                    held = self.balancer.start(&backends[i]);
                }
                strip_hop_by_hop(resp.headers_mut());
                let guard = (held, metered, gauge);
                // The counts hold until the body has streamed out (or the client went away).
                resp.map(move |b| {
                    b.map_frame(move |f| {
                        let _ = &guard;
                        f
                    })
                    .boxed()
                })
            }
            Err(SendError::Connect(refused)) => {
                drop((held, gauge));
                let tried: Vec<String> = refused.iter().map(|(a, e)| format!("{a}: {e}")).collect();
                warn!(service = %prefix, tried = ?tried, "no replica took a connection");
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "no replica of {ns}/{name} took a connection ({})",
                        tried.join("; ")
                    ),
                )
            }
            Err(SendError::Failed(addr, e)) => {
                drop((held, gauge));
                debug!(service = %prefix, %addr, error = %e, "replica failed a request");
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!("replica of {ns}/{name} at {addr} failed: {e}"),
                )
            }
        };
        self.count(&ns, &name, resp)
    }

    /// The caller may reach services in `ns`: `get` on its workloads.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        peer: &PeerInfo,
        ns: &str,
    ) -> Result<(), (StatusCode, String)> {
        // Only the credential: the rest of the headers are the service's business.
        let mut only = HeaderMap::new();
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            only.insert(header::AUTHORIZATION, v.clone());
        }
        let mut probe = tonic::Request::new(());
        *probe.metadata_mut() = MetadataMap::from_headers(only);
        probe.extensions_mut().insert(peer.clone());
        let caller = self
            .auth
            .caller(&probe)
            .await
            .map_err(|s| (status_code(&s), s.message().to_string()))?;
        caller
            .check(Verb::Get, Resource::Workloads, ns)
            .map_err(|s| (status_code(&s), s.message().to_string()))
    }

    fn count(&self, ns: &str, name: &str, resp: Response<Body>) -> Response<Body> {
        self.metrics
            .requests
            .with_label_values(&[ns, name, resp.status().as_str()])
            .inc();
        resp
    }
}

struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn status_code(s: &tonic::Status) -> StatusCode {
    match s.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Headers that describe one connection, not the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::TRANSFER_ENCODING);
}

/// Rewrites a client's request for a replica: its own path, HTTP/1.1, no hop-by-hop headers
/// and no cluster credentials, and where it came from.
fn prepare(req: &mut Request<Incoming>, rest: &str, prefix: &str, peer: &PeerInfo) {
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    *req.uri_mut() = Uri::try_from(rest).unwrap_or_else(|_| Uri::from_static("/"));
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    h.remove(header::AUTHORIZATION);
    if let Some(host) = host {
        h.insert(header::HOST, host);
    }
    if let Ok(v) = HeaderValue::from_str(prefix) {
        h.insert("x-forwarded-prefix", v);
    }
    if let Some(ip) = peer.remote_addr.map(|a| a.ip().to_string()) {
        let chain = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            h.insert("x-forwarded-for", v);
        }
    }
}

/// `503` with `Retry-After`.
fn unavailable(msg: &str) -> Response<Body> {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, msg);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn text(code: StatusCode, msg: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves the gateway on `listener` until `cancel`, then lets requests in flight finish for
/// up to [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<ReloadingAcceptor>,
    gateway: Arc<Gateway>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    info!(%addr, tls = tls.is_some(), "gateway listening");
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        Some(acceptor) => {
            let conns = incoming(listener, acceptor.for_http());
            tokio::pin!(conns);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    next = conns.next() => match next {
                        Some(Ok(c)) => {
                            let peer = c.peer().clone();
                            serve_one(&builder, &graceful, c, peer, gateway.clone());
                        }
                        Some(Err(e)) => debug!(error = %e, "gateway connection refused"),
                        None => break,
                    },
                }
            }
        }
        None => loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, remote)) => {
                        let _ = tcp.set_nodelay(true);
                        let peer = PeerInfo { remote_addr: Some(remote), client_certs: None };
                        serve_one(&builder, &graceful, tcp, peer, gateway.clone());
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "gateway accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        },
    }
    tokio::select! {
        _ = graceful.shutdown() => info!(%addr, "gateway stopped"),
        _ = tokio::time::sleep(DRAIN) => warn!(%addr, "gateway stopped with requests in flight"),
    }
    Ok(())
}

fn serve_one<IO>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    io: IO,
    peer: PeerInfo,
    gateway: Arc<Gateway>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let (gateway, peer) = (gateway.clone(), peer.clone());
        async move { Ok::<_, Infallible>(gateway.handle(req, &peer).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "gateway connection ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["x-kept"]);
    }
}
