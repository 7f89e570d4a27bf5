//! NodeService: nodes are read from the cache (agents write them, the leader marks lost ones
//! NotReady) with their usage joined from the cache's allocations. Cordon, uncordon and drain
//! write the node back with compare-and-swap, keeping the agent's lease and status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uni_core::model::{Allocation, DeviceUsage, Node, Resource, ResourceAmounts, Verb};
use uni_core::store::keys::{NodeKey, TypedKey};
use uni_core::Error as CoreError;
use uni_proto::v1 as pb;
use uni_proto::v1::node_service_server::NodeService;

use super::paging::{list_map, page_size};
use super::watch::{self, WatchRequest};
use super::{args, object, ApiContext};
use crate::cache::State;
use crate::error::Result;

/// How long a write waits for the cache to see it, so a read from this replica that follows
/// sees the write too.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

pub struct NodeApi {
    ctx: ApiContext,
    shutdown: CancellationToken,
}

/// What the allocations on one node take from it.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    allocated: ResourceAmounts,
    replicas: u32,
    devices: BTreeMap<u32, DeviceUsage>,
}

impl Usage {
    fn add(&mut self, alloc: &Allocation) {
        self.allocated += alloc.amounts();
        self.replicas = self.replicas.saturating_add(1);
        for d in &alloc.devices {
            let dev = self.devices.entry(d.index).or_insert(DeviceUsage {
                index: d.index,
                ..DeviceUsage::default()
            });
            dev.allocated_milli = dev.allocated_milli.saturating_add(d.share_milli);
            dev.allocated_memory_bytes = dev.allocated_memory_bytes.saturating_add(d.memory_bytes);
        }
    }
}

/// Usage of every node with allocations, from one pass over the cache's allocations.
pub(crate) fn usage_by_node(state: &State) -> HashMap<&str, Usage> {
    let mut usage: HashMap<&str, Usage> = HashMap::new();
    for alloc in state.allocations() {
        usage.entry(alloc.node.as_str()).or_default().add(alloc);
    }
    usage
}

/// Usage of one node.
fn usage_of(state: &State, name: &str) -> Usage {
    let mut usage = Usage::default();
    for alloc in state.allocations().filter(|a| a.node == name) {
        usage.add(alloc);
    }
    usage
}

/// The node as clients see it: its stored state with the usage its allocations imply.
pub(crate) fn node_view(node: &Node, usage: Option<&Usage>) -> Node {
    let mut node = node.clone();
    let status = &mut node.status;
    match usage {
        Some(u) => {
            status.allocated = u.allocated;
            status.replicas = u.replicas;
            status.devices = u.devices.values().copied().collect();
        }
        None => {
            status.allocated = ResourceAmounts::default();
            status.replicas = 0;
            status.devices.clear();
        }
    }
    node
}

impl NodeApi {
    /// `shutdown` ends open watches so that the server can drain.
    pub fn new(ctx: ApiContext, shutdown: CancellationToken) -> Self {
        Self { ctx, shutdown }
    }

    /// One node from the cache, with its usage.
    fn cached(&self, name: &str) -> Result<pb::Node> {
        let state = self.ctx.cache.lock();
        let stored = state
            .node(name)
            .ok_or_else(|| CoreError::NotFound(format!("node {name}")))?;
        let usage = usage_of(&state, name);
        Ok(pb::Node::from(&node_view(&stored.value, Some(&usage))))
    }

    fn list(&self, req: pb::ListNodesRequest) -> Result<pb::ListNodesResponse> {
        let selector = args::selector("label_selector", &req.label_selector)?;
        let state = self.ctx.cache.lock();
        let (page, next_page_token) = list_map(
            state.nodes(),
            &req.page_token,
            page_size(req.page_size),
            |n| selector.matches(&n.value.meta.labels),
        );
        let usage = usage_by_node(&state);
        let nodes = page
            .into_iter()
            .map(|n| pb::Node::from(&node_view(&n.value, usage.get(n.value.meta.name.as_str()))))
            .collect();
        Ok(pb::ListNodesResponse {
            nodes,
            next_page_token,
            resource_version: state.revision(),
        })
    }

    fn get(&self, req: pb::GetNodeRequest) -> Result<pb::Node> {
        NodeKey::new(req.name.as_str())?;
        self.cached(&req.name)
    }

    /// Writes `change` to the stored node (keeping its lease), waits until the cache has it,
    /// and returns the node as clients see it.
    async fn change(&self, name: &str, change: impl FnMut(Node) -> Result<Node>) -> Result<Node> {
        let key = NodeKey::new(name)?.format();
        let what = format!("node {name}");
        let node = object::update(&*self.ctx.store, &key, &what, 0, false, change).await?;
        self.ctx
            .cache
            .wait_for(node.meta.resource_version, READ_YOUR_WRITES)
            .await;
        let state = self.ctx.cache.lock();
        Ok(node_view(&node, Some(&usage_of(&state, name))))
    }

    async fn cordon(&self, req: pb::CordonNodeRequest) -> Result<pb::Node> {
        let node = self
            .change(&req.name, |mut n| {
                n.spec.cordoned = true;
                Ok(n)
            })
            .await?;
        Ok(pb::Node::from(&node))
    }

    /// Also ends a drain.
    async fn uncordon(&self, req: pb::UncordonNodeRequest) -> Result<pb::Node> {
        let node = self
            .change(&req.name, |mut n| {
                n.spec.cordoned = false;
                n.status.draining = false;
                Ok(n)
            })
            .await?;
        Ok(pb::Node::from(&node))
    }

    /// Marks the node cordoned and draining; the leader evicts what runs there.
    async fn drain(&self, req: pb::DrainNodeRequest) -> Result<pb::DrainNodeResponse> {
        let node = self
            .change(&req.name, |mut n| {
                n.spec.cordoned = true;
                n.status.draining = true;
                Ok(n)
            })
            .await?;
        Ok(pb::DrainNodeResponse {
            evicted_replicas: node.status.replicas,
            node: Some(pb::Node::from(&node)),
        })
    }

    async fn watch(
        &self,
        req: pb::WatchNodesRequest,
    ) -> std::result::Result<watch::Responses<pb::WatchNodesResponse>, Status> {
        let selector = args::selector("label_selector", &req.label_selector)?;
        let request = WatchRequest {
            prefix: NodeKey::prefix(),
            resource_version: req.resource_version,
            allow_bookmarks: req.allow_bookmarks,
            narrowed: !selector.is_empty(),
            matches: Box::new(move |n: &Node| selector.matches(&n.meta.labels)),
        };
        let respond =
            Arc::new(
                |ty: pb::WatchEventType, n: Option<Node>, rev| pb::WatchNodesResponse {
                    r#type: ty.into(),
                    node: n.as_ref().map(pb::Node::from),
                    resource_version: rev,
                },
            );
        watch::start(&self.ctx, request, respond, self.shutdown.clone()).await
    }
}

#[tonic::async_trait]
impl NodeService for NodeApi {
    async fn list_nodes(
        &self,
        req: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        caller.check(Verb::List, Resource::Nodes, "")?;
        Ok(Response::new(self.list(req.into_inner())?))
    }

    async fn get_node(
        &self,
        req: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        caller.check(Verb::Get, Resource::Nodes, "")?;
        Ok(Response::new(self.get(req.into_inner())?))
    }

    async fn cordon_node(
        &self,
        req: Request<pb::CordonNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = req.name.clone();
        let call = async { Ok(self.cordon(req).await?) };
        let out = caller
            .audited(Verb::Cordon, Resource::Nodes, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }

    async fn uncordon_node(
        &self,
        req: Request<pb::UncordonNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = req.name.clone();
        let call = async { Ok(self.uncordon(req).await?) };
        let out = caller
            .audited(Verb::Cordon, Resource::Nodes, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }

    async fn drain_node(
        &self,
        req: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = req.name.clone();
        let call = async { Ok(self.drain(req).await?) };
        let out = caller
            .audited(Verb::Drain, Resource::Nodes, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }

    type WatchNodesStream = watch::Responses<pb::WatchNodesResponse>;

    async fn watch_nodes(
        &self,
        req: Request<pb::WatchNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        caller.check(Verb::Watch, Resource::Nodes, "")?;
        Ok(Response::new(self.watch(req.into_inner()).await?))
    }
}
