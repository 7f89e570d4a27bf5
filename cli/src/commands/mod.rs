//! One module per verb.

pub mod access;
pub mod apply;
pub mod config;
pub mod delete;
pub mod describe;
pub mod events;
pub mod get;
pub mod logs;
pub mod nodes;
pub mod rollout;
pub mod scale;
pub mod version;

use anyhow::bail;
use uni_core::client::Target;
use uni_core::model::{Node, Queue, UnixMillis, Workload, WorkloadKind};
use uni_proto::v1 as pb;

use crate::client::{connect, explain, Clients};

/// What every command needs: the server and credentials, and which namespace is meant.
pub struct Ctx {
    pub target: Target,
    pub namespace: String,
    /// `-n` was given: it overrides the namespace written in manifests.
    pub namespace_explicit: bool,
    pub all_namespaces: bool,
}

impl Ctx {
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        connect(&self.target).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Workloads(Option<WorkloadKind>),
    Nodes,
    Queues,
    RoleBindings,
}

/// Resource names and aliases as kubectl users expect them.
pub fn resource(name: &str) -> anyhow::Result<Resource> {
    let name = name.split('/').next().unwrap_or(name).to_ascii_lowercase();
    Ok(match name.as_str() {
        "workloads" | "workload" | "wl" => Resource::Workloads(None),
        "inferenceservices" | "inferenceservice" | "isvc" => {
            Resource::Workloads(Some(WorkloadKind::InferenceService))
        }
        "trainingjobs" | "trainingjob" | "tj" => {
            Resource::Workloads(Some(WorkloadKind::TrainingJob))
        }
        "nodes" | "node" | "no" => Resource::Nodes,
        "queues" | "queue" | "q" => Resource::Queues,
        "rolebindings" | "rolebinding" | "rb" => Resource::RoleBindings,
        other => bail!(
            "unknown resource type {other:?}: use workloads, inferenceservices, trainingjobs, \
             nodes, queues or rolebindings"
        ),
    })
}

pub fn now() -> i64 {
    UnixMillis::now().0
}

fn decode<T, P>(p: P) -> anyhow::Result<T>
where
    T: TryFrom<P, Error = uni_core::Error>,
{
    T::try_from(p).map_err(|e| anyhow::anyhow!("unexpected response from the server: {e}"))
}

pub async fn get_workload(c: &mut Clients, ns: &str, name: &str) -> anyhow::Result<Workload> {
    let w = c
        .workloads
        .get_workload(pb::GetWorkloadRequest {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    decode(w)
}

/// Every item of a paged list: `page(token)` returns one page and the next token.
pub async fn all_pages<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Vec<T>, String)>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        out.extend(items);
        if next.is_empty() {
            return Ok(out);
        }
        token = next;
    }
}

pub fn decode_all<T, P>(items: Vec<P>) -> anyhow::Result<Vec<T>>
where
    T: TryFrom<P, Error = uni_core::Error>,
{
    items.into_iter().map(decode).collect()
}

pub async fn list_workloads(
    c: &mut Clients,
    ctx: &Ctx,
    selector: &str,
    kind: Option<WorkloadKind>,
) -> anyhow::Result<Vec<Workload>> {
    let kind = match kind {
        None => pb::WorkloadKind::Unspecified,
        Some(WorkloadKind::InferenceService) => pb::WorkloadKind::InferenceService,
        Some(WorkloadKind::TrainingJob) => pb::WorkloadKind::TrainingJob,
    };
    let client = c.workloads.clone();
    all_pages(|page_token| {
        let mut client = client.clone();
        let req = pb::ListWorkloadsRequest {
            namespace: ctx.namespace.clone(),
            all_namespaces: ctx.all_namespaces,
            label_selector: selector.to_string(),
            kind: kind as i32,
            page_size: 500,
            page_token,
        };
        async move {
            let page = client
                .list_workloads(req)
                .await
                .map_err(explain)?
                .into_inner();
            Ok((decode_all(page.workloads)?, page.next_page_token))
        }
    })
    .await
}

pub async fn list_nodes(c: &mut Clients, selector: &str) -> anyhow::Result<Vec<Node>> {
    let client = c.nodes.clone();
    all_pages(|page_token| {
        let mut client = client.clone();
        let req = pb::ListNodesRequest {
            label_selector: selector.to_string(),
            page_size: 500,
            page_token,
        };
        async move {
            let page = client.list_nodes(req).await.map_err(explain)?.into_inner();
            Ok((decode_all(page.nodes)?, page.next_page_token))
        }
    })
    .await
}

pub async fn list_queues(c: &mut Clients, selector: &str) -> anyhow::Result<Vec<Queue>> {
    let client = c.queues.clone();
    all_pages(|page_token| {
        let mut client = client.clone();
        let req = pb::ListQueuesRequest {
            label_selector: selector.to_string(),
            page_size: 500,
            page_token,
        };
        async move {
            let page = client.list_queues(req).await.map_err(explain)?.into_inner();
            Ok((decode_all(page.queues)?, page.next_page_token))
        }
    })
    .await
}
