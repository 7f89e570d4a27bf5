//! The gRPC server every replica runs: the `universal.v1` services, gRPC health and server
//! reflection, with request size limits and graceful shutdown. LogService forwards to the
//! agents, which keep the logs.

use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tracing::{info, warn};
use uni_core::tls::server::{incoming, ReloadingAcceptor};
use uni_proto::v1::access_service_server::AccessServiceServer;
use uni_proto::v1::agent_gateway_service_server::AgentGatewayServiceServer;
use uni_proto::v1::cluster_service_server::ClusterServiceServer;
use uni_proto::v1::event_service_server::EventServiceServer;
use uni_proto::v1::log_service_server::LogServiceServer;
use uni_proto::v1::node_service_server::NodeServiceServer;
use uni_proto::v1::queue_service_server::QueueServiceServer;
use uni_proto::v1::workload_service_server::WorkloadServiceServer;
use uni_proto::v1::FILE_DESCRIPTOR_SET;

use crate::api::{
    ensure_default_queue, AccessApi, ApiContext, ClusterApi, EventApi, GatewayApi, LogApi, NodeApi,
    QueueApi, WorkloadApi,
};

/// Largest request accepted; specs are small, so anything bigger is a mistake or an attack.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest response sent; pages are cut by bytes well below it.
pub const MAX_RESPONSE_BYTES: usize = uni_core::client::MAX_API_RESPONSE_BYTES;
/// Most concurrent streams (calls and watches) on one HTTP/2 connection, as Go's gRPC servers
/// allow; beyond it a client opens another connection or waits.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// A connection whose keepalive ping is not answered within this is closed, with its watches.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pings idle connections so that dead clients (and their watches) are noticed.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Services served besides the API, advertised by reflection.
const REFLECTED_EXTRAS: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Services this server registers, as reflection advertises them.
fn served_names() -> [&'static str; 8] {
    [
        AccessServiceServer::<AccessApi>::NAME,
        AgentGatewayServiceServer::<GatewayApi>::NAME,
        LogServiceServer::<LogApi>::NAME,
        WorkloadServiceServer::<WorkloadApi>::NAME,
        NodeServiceServer::<NodeApi>::NAME,
        QueueServiceServer::<QueueApi>::NAME,
        ClusterServiceServer::<ClusterApi>::NAME,
        EventServiceServer::<EventApi>::NAME,
    ]
}

/// Serves the API on `listener` until `shutdown` is cancelled, then stops accepting, ends open
/// watches and waits for in-flight calls.
pub async fn serve(
    listener: TcpListener,
    tls: Option<ReloadingAcceptor>,
    ctx: ApiContext,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("listener address")?;
    if let Err(e) = ensure_default_queue(&*ctx.store).await {
        // Not fatal: the next replica to start (or this one, on restart) creates it.
        warn!(error = %e, "could not ensure the default queue exists");
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    for name in served_names().into_iter().chain([""]) {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    // Reflection advertises what is served, in both protocol versions so that older tools
    // work too.
    let reflection = || {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        served_names()
            .into_iter()
            .chain(REFLECTED_EXTRAS)
            .fold(builder, |b, name| b.with_service_name(name))
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building the reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building the reflection service")?;

    let workloads = WorkloadServiceServer::new(WorkloadApi::new(ctx.clone(), shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let nodes = NodeServiceServer::new(NodeApi::new(ctx.clone(), shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let queues = QueueServiceServer::new(QueueApi::new(ctx.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let cluster = ClusterServiceServer::new(ClusterApi::new(ctx.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let gateway = AgentGatewayServiceServer::new(GatewayApi::new(ctx.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let access = AccessServiceServer::new(AccessApi::new(ctx.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let logs = LogServiceServer::new(LogApi::new(ctx.clone(), shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let events = EventServiceServer::new(EventApi::new(ctx, shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);

    let draining = {
        let shutdown = shutdown.clone();
        let health = health.clone();
        async move {
            shutdown.cancelled().await;
            info!("API server shutting down");
            for name in served_names().into_iter().chain([""]) {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        }
    };

    info!(%addr, tls = tls.is_some(), "API server listening");
    let router = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(KEEPALIVE))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(workloads)
        .add_service(nodes)
        .add_service(queues)
        .add_service(cluster)
        .add_service(events)
        .add_service(logs)
        .add_service(access)
        .add_service(gateway);
    match tls {
        Some(acceptor) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, acceptor), draining)
                .await
        }
        None => {
            let plain = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(plain, draining).await
        }
    }
    .context("API server")?;
    info!(%addr, "API server stopped");
    Ok(())
}
