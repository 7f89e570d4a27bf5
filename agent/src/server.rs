//! The agent's gRPC server: `LogService` and gRPC health, with graceful shutdown.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tracing::info;
use uni_core::tls::pki::cert_info;
use uni_core::tls::server::{incoming, PeerInfo, ReloadingAcceptor};
use uni_core::tls::SCHEDULERS_GROUP;
use uni_proto::v1::log_service_server::{LogService, LogServiceServer};

use crate::error::{Error, Result};

/// Largest request accepted.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Only scheduler replicas read logs here: a TLS client certificate of the cluster CA in
/// group `system:schedulers`. Without TLS (an agent on etcd, tests) every caller may.
fn schedulers_only(req: Request<()>) -> std::result::Result<Request<()>, Status> {
    let Some(peer) = req.extensions().get::<PeerInfo>() else {
        return Ok(req);
    };
    let scheduler = peer
        .client_certs
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|leaf| cert_info(leaf.as_ref()).ok())
        .is_some_and(|i| i.organizations.iter().any(|o| o == SCHEDULERS_GROUP));
    if scheduler {
        Ok(req)
    } else {
        Err(Status::permission_denied(format!(
            "replica logs are served to the scheduler only (a client certificate in {SCHEDULERS_GROUP})"
        )))
    }
}

/// Serves `logs` on `listener` until `cancel`, over TLS with `tls`.
pub async fn serve<L: LogService>(
    listener: TcpListener,
    logs: L,
    tls: Option<ReloadingAcceptor>,
    cancel: CancellationToken,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(Error::io("gRPC listener address"))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [LogServiceServer::<L>::NAME, ""] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let logs = InterceptedService::new(
        LogServiceServer::new(logs).max_decoding_message_size(MAX_REQUEST_BYTES),
        schedulers_only,
    );
    info!(%addr, tls = tls.is_some(), "agent gRPC server listening");
    let router = Server::builder()
        .add_service(health_service)
        .add_service(logs);
    let stopped = async move { cancel.cancelled().await };
    match tls {
        Some(acceptor) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, acceptor), stopped)
                .await
        }
        None => {
            let plain = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(plain, stopped).await
        }
    }
    .map_err(|e| Error::Server(format!("gRPC server: {e}")))
}

/// The gRPC listener and the optional metrics listener, bound, with their addresses (port 0
/// resolved).
pub struct Listeners {
    pub grpc: TcpListener,
    pub grpc_addr: std::net::SocketAddr,
    pub metrics: Option<TcpListener>,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Listeners {
    pub async fn bind(
        listen: std::net::SocketAddr,
        metrics_listen: Option<std::net::SocketAddr>,
    ) -> Result<Self> {
        let grpc = bind(listen).await?;
        let grpc_addr = grpc
            .local_addr()
            .map_err(Error::io("gRPC listener address"))?;
        let metrics = match metrics_listen {
            Some(a) => Some(crate::metrics::bind(a).await?),
            None => None,
        };
        let metrics_addr = metrics
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()
            .map_err(Error::io("metrics listener address"))?;
        Ok(Self {
            grpc,
            grpc_addr,
            metrics,
            metrics_addr,
        })
    }
}

/// Binds the gRPC listener (port 0 picks one).
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("binding gRPC listener {addr}")))
}
