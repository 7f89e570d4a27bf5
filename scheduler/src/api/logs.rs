//! LogService on the control plane: replica output lives on the agents, so each request is
//! forwarded to the agents of the nodes the workload's replicas run on (`agent_endpoint` in
//! their node status), and their streams are merged as they arrive.

use std::pin::Pin;
use uni_core::error::{shorten, MAX_FIELD_MESSAGE};

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use uni_core::model::{Resource, Verb, WorkloadRef};
use uni_core::tls::client::{channel, ClientTls};
use uni_core::tls::node_server_name;
use uni_proto::v1 as pb;
use uni_proto::v1::log_service_client::LogServiceClient;
use uni_proto::v1::log_service_server::LogService;

use super::access::or_default;
use super::ApiContext;

pub struct LogApi {
    ctx: ApiContext,
    shutdown: CancellationToken,
}

impl LogApi {
    pub fn new(ctx: ApiContext, shutdown: CancellationToken) -> Self {
        Self { ctx, shutdown }
    }

    /// (replica, node, agent endpoint) of every replica the request asks for.
    fn targets(&self, req: &pb::StreamLogsRequest) -> Result<Vec<(u32, String, String)>, Status> {
        let namespace = if req.namespace.is_empty() {
            "default".to_string()
        } else {
            req.namespace.clone()
        };
        let r = WorkloadRef {
            namespace,
            name: req.workload.clone(),
        };
        let st = self.ctx.cache.lock();
        if st.workload(&r).is_none() {
            let message = format!("workload {r} not found");
            return Err(Status::not_found(shorten(message, MAX_FIELD_MESSAGE)));
        }
        // Running replicas from their allocations; a finished job's from its stored status.
        let mut placed: Vec<(u32, String)> = st
            .allocations_of(&r)
            .iter()
            .map(|a| (a.replica, a.node.clone()))
            .collect();
        if placed.is_empty() {
            if let Some(w) = st.workload(&r) {
                placed = w
                    .value
                    .status
                    .replicas
                    .iter()
                    .map(|v| (v.replica, v.node.clone()))
                    .collect();
            }
        }
        let mut out = Vec::new();
        for (replica, node) in placed {
            if req.replica.is_some_and(|want| want != replica) {
                continue;
            }
            let endpoint = st
                .node(&node)
                .map(|n| n.value.status.agent_endpoint.clone())
                .unwrap_or_default();
            if endpoint.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "node {node} has no agent serving logs"
                )));
            }
            out.push((replica, node, endpoint));
        }
        if out.is_empty() {
            return Err(Status::not_found(match req.replica {
                Some(i) => format!("workload {r} has no replica {i} placed"),
                None => format!("workload {r} has no placed replicas yet"),
            }));
        }
        Ok(out)
    }
}

impl LogApi {
    /// A client of an agent's log service: over TLS as this replica for `https://`.
    /// A client of `node`'s agent at `endpoint`, verified as that node whatever the address.
    async fn agent(&self, node: &str, endpoint: &str) -> anyhow::Result<LogServiceClient<Channel>> {
        let tls = match (
            endpoint.starts_with("https://"),
            self.ctx.auth.agent_client(),
        ) {
            (true, Some(f)) => Some(ClientTls {
                domain: Some(node_server_name(node)),
                ..ClientTls::from_files(Some(&f.ca), Some(&f.cert), Some(&f.key))?
            }),
            (true, None) => {
                anyhow::bail!("the agent serves TLS and this scheduler has no certificate")
            }
            (false, _) => None,
        };
        let channel = channel(endpoint, tls.as_ref())?.connect().await?;
        Ok(LogServiceClient::new(channel))
    }
}

/// How long an agent may take to start a log stream once connected.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl LogService for LogApi {
    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        request: Request<pb::StreamLogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let caller = self.ctx.auth.caller(&request).await?;
        let req = request.into_inner();
        // Reading output is reading the workload.
        caller.check(Verb::Get, Resource::Logs, or_default(&req.namespace))?;
        if req.workload.is_empty() {
            return Err(Status::invalid_argument("workload: required"));
        }
        // Every replica's agent at once (each connect is bounded by the channel's 5 s
        // connect timeout, each open by OPEN_TIMEOUT), so one dead node costs one timeout.
        let opens = self
            .targets(&req)?
            .into_iter()
            .map(|(replica, node, endpoint)| {
                let one = pb::StreamLogsRequest {
                    replica: Some(replica),
                    ..req.clone()
                };
                async move {
                    let unreachable = |e: String| {
                        Status::unavailable(format!("agent of node {node} at {endpoint}: {e}"))
                    };
                    let mut client = self
                        .agent(&node, &endpoint)
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    match tokio::time::timeout(OPEN_TIMEOUT, client.stream_logs(one)).await {
                        Ok(opened) => Ok(opened?.into_inner()),
                        Err(_) => Err(unreachable(format!(
                            "no answer within {}s",
                            OPEN_TIMEOUT.as_secs()
                        ))),
                    }
                }
            });
        let streams = futures::future::try_join_all(opens).await?;
        let shutdown = self.shutdown.clone();
        let merged = futures::stream::select_all(streams)
            .take_until(async move { shutdown.cancelled().await });
        Ok(Response::new(Box::pin(merged)))
    }
}
