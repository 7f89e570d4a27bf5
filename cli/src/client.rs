//! Connections to the API server, and gRPC errors made readable.

use anyhow::anyhow;
use tonic::{Code, Status};
use uni_core::client::{AuthChannel, Target, MAX_API_RESPONSE_BYTES as MAX};
use uni_proto::v1::{
    access_service_client::AccessServiceClient, cluster_service_client::ClusterServiceClient,
    event_service_client::EventServiceClient, log_service_client::LogServiceClient,
    node_service_client::NodeServiceClient, queue_service_client::QueueServiceClient,
    workload_service_client::WorkloadServiceClient,
};

#[derive(Clone)]
pub struct Clients {
    pub workloads: WorkloadServiceClient<AuthChannel>,
    pub nodes: NodeServiceClient<AuthChannel>,
    pub queues: QueueServiceClient<AuthChannel>,
    pub cluster: ClusterServiceClient<AuthChannel>,
    pub events: EventServiceClient<AuthChannel>,
    pub logs: LogServiceClient<AuthChannel>,
    pub access: AccessServiceClient<AuthChannel>,
}

pub async fn connect(target: &Target) -> anyhow::Result<Clients> {
    let channel = target
        .connect()
        .await
        .map_err(|e| anyhow!("{e} (is uni-scheduler running? see --server and --context)"))?;
    Ok(Clients {
        workloads: WorkloadServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        nodes: NodeServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        queues: QueueServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        cluster: ClusterServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        events: EventServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        logs: LogServiceClient::new(channel.clone()).max_decoding_message_size(MAX),
        access: AccessServiceClient::new(channel).max_decoding_message_size(MAX),
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
        Code::PermissionDenied => "forbidden",
        Code::ResourceExhausted => "limit reached",
        Code::Unauthenticated => {
            return anyhow!(
                "not authenticated: {} (give a token with --token or $UNIVERSAL_TOKEN, or set \
                 the context's credentials with `unictl config set-context`)",
                s.message()
            )
        }
        _ => "server error",
    };
    anyhow!("{what}: {}", s.message())
}
