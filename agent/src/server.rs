//! The agent's gRPC server: `LogService` and gRPC health, with graceful shutdown.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tracing::info;
use uni_proto::v1::log_service_server::{LogService, LogServiceServer};

use crate::error::{Error, Result};

/// Largest request accepted.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Serves `logs` on `listener` until `cancel`.
pub async fn serve<L: LogService>(
    listener: TcpListener,
    logs: L,
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
    let logs = LogServiceServer::new(logs).max_decoding_message_size(MAX_REQUEST_BYTES);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    info!(%addr, "agent gRPC server listening");
    Server::builder()
        .add_service(health_service)
        .add_service(logs)
        .serve_with_incoming_shutdown(incoming, async move { cancel.cancelled().await })
        .await
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
