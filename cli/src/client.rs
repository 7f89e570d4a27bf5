//! Connections to the API server, and gRPC errors made readable.

use anyhow::anyhow;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uni_proto::v1::{
    cluster_service_client::ClusterServiceClient, event_service_client::EventServiceClient,
    log_service_client::LogServiceClient, node_service_client::NodeServiceClient,
    queue_service_client::QueueServiceClient, workload_service_client::WorkloadServiceClient,
};

#[derive(Clone)]
pub struct Clients {
    pub workloads: WorkloadServiceClient<Channel>,
    pub nodes: NodeServiceClient<Channel>,
    pub queues: QueueServiceClient<Channel>,
    pub cluster: ClusterServiceClient<Channel>,
    pub events: EventServiceClient<Channel>,
    pub logs: LogServiceClient<Channel>,
}

pub async fn connect(server: &str) -> anyhow::Result<Clients> {
    let channel = Channel::from_shared(server.to_string())
        .map_err(|e| anyhow!("bad server address {server:?}: {e}"))?
        .connect()
        .await
        .map_err(|e| {
            anyhow!("cannot reach the Universal API at {server}: {e} (is uni-scheduler running? see --server)")
        })?;
    Ok(Clients {
        workloads: WorkloadServiceClient::new(channel.clone()),
        nodes: NodeServiceClient::new(channel.clone()),
        queues: QueueServiceClient::new(channel.clone()),
        cluster: ClusterServiceClient::new(channel.clone()),
        events: EventServiceClient::new(channel.clone()),
        logs: LogServiceClient::new(channel),
    })
}

/// An error from the server as a person reads it.
pub fn explain(s: Status) -> anyhow::Error {
    let what = match s.code() {
        Code::InvalidArgument => "invalid",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::Aborted => "conflict",
        Code::FailedPrecondition => "refused",
        Code::Unavailable => "unavailable",
        Code::Unimplemented => "not supported by this server",
        _ => "server error",
    };
    anyhow!("{what}: {}", s.message())
}
