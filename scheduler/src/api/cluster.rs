//! ClusterService: the fleet as one "universal instance", summed from the cache.

use tonic::{Request, Response, Status};
use uni_core::model::{ClusterSummary, Node, WorkloadPhase};
use uni_proto::v1 as pb;
use uni_proto::v1::cluster_service_server::ClusterService;

use super::nodes::{node_view, usage_by_node};
use super::{allocation_cost, overlay_status, ApiContext};

/// The API package this server speaks.
const API_VERSION: &str = "universal.v1";

pub struct ClusterApi {
    ctx: ApiContext,
}

impl ClusterApi {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }

    fn summary(&self) -> ClusterSummary {
        let state = self.ctx.cache.lock();
        let usage = usage_by_node(&state);
        let nodes: Vec<Node> = state
            .nodes()
            .values()
            .map(|n| node_view(&n.value, usage.get(n.value.meta.name.as_str())))
            .collect();
        let mut summary = ClusterSummary::from_nodes(&nodes);

        summary.allocated_price_per_hour = state
            .allocations()
            .filter_map(|a| {
                let node = &state.node(&a.node)?.value;
                node.status
                    .ready
                    .then(|| allocation_cost(state.catalog(), Some(node), a))
            })
            .sum();

        let counts = &mut summary.workloads;
        for stored in state.workloads().values() {
            let mut w = stored.value.clone();
            overlay_status(&state, &mut w);
            counts.total += 1;
            match w.status.phase {
                WorkloadPhase::Pending | WorkloadPhase::Preempted => counts.pending += 1,
                WorkloadPhase::Scheduled | WorkloadPhase::Running | WorkloadPhase::Ready => {
                    counts.running += 1
                }
                WorkloadPhase::Succeeded => counts.succeeded += 1,
                WorkloadPhase::Failed => counts.failed += 1,
                WorkloadPhase::Terminating => {}
            }
        }
        summary
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    async fn get_cluster_summary(
        &self,
        req: Request<pb::GetClusterSummaryRequest>,
    ) -> Result<Response<pb::ClusterSummary>, Status> {
        // Totals only: any authenticated caller may see them.
        self.ctx.auth.caller(&req).await?;
        let mut summary = self.summary();
        // The summary still answers when the store cannot say (it is then what is cached).
        if let Ok(health) = self.ctx.store.health().await {
            summary.store_alarms = health.alarms;
            summary.store_db_size_bytes = health.db_size_bytes;
        }
        Ok(Response::new(pb::ClusterSummary::from(&summary)))
    }

    async fn get_version(
        &self,
        req: Request<pb::GetVersionRequest>,
    ) -> Result<Response<pb::VersionInfo>, Status> {
        self.ctx.auth.caller(&req).await?;
        Ok(Response::new(pb::VersionInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            // Set by release builds; empty in development.
            git_commit: option_env!("UNIVERSAL_GIT_COMMIT")
                .unwrap_or_default()
                .to_string(),
            api_version: API_VERSION.to_string(),
        }))
    }
}
