//! `unictl apply -f`: create what is missing, update what differs, leave the rest; prints
//! `created`, `configured` or `unchanged` per object, as kubectl does.

use tonic::Code;
use uni_core::model::{Queue, Workload};
use uni_proto::v1 as pb;

use super::Ctx;
use crate::client::{explain, Clients};
use crate::manifest::{self, Doc, ManifestErrors, Object};

/// Reads and checks every manifest first: one bad document changes nothing.
pub fn load(files: &[String], namespace_override: Option<&str>) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for (source, text) in manifest::read_sources(files)? {
        match manifest::parse(&source, &text) {
            Ok(d) => docs.extend(d),
            Err(ManifestErrors(e)) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ManifestErrors(errors).into());
    }
    if let Some(ns) = namespace_override {
        for d in &mut docs {
            if let Object::Workload(w) = &mut d.object {
                w.meta.namespace = ns.to_string();
            }
        }
    }
    Ok(docs)
}

pub async fn run(ctx: &Ctx, files: &[String]) -> anyhow::Result<()> {
    // `-n` overrides the manifests' namespace only when given explicitly (not the default).
    let docs = load(
        files,
        ctx.namespace_explicit.then_some(ctx.namespace.as_str()),
    )?;
    let mut c = ctx.clients().await?;
    for d in docs {
        let outcome = match &d.object {
            Object::Workload(w) => apply_workload(&mut c, w).await,
            Object::Queue(q) => apply_queue(&mut c, q).await,
        }
        .map_err(|e| anyhow::anyhow!("{}:{}: {}: {e:#}", d.source, d.line, d.object.reference()))?;
        println!("{} {outcome}", d.object.reference());
    }
    Ok(())
}

async fn apply_workload(c: &mut Clients, w: &Workload) -> anyhow::Result<&'static str> {
    let created = c
        .workloads
        .create_workload(pb::CreateWorkloadRequest {
            workload: Some(pb::Workload::from(w)),
            dry_run: false,
        })
        .await;
    if created_now(created)? {
        return Ok("created");
    }
    let current = super::get_workload(c, &w.meta.namespace, &w.meta.name).await?;
    if current.spec == w.spec
        && current.meta.labels == w.meta.labels
        && current.meta.annotations == w.meta.annotations
    {
        return Ok("unchanged");
    }
    c.workloads
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(pb::Workload::from(w)),
            expected_resource_version: current.meta.resource_version,
            dry_run: false,
        })
        .await
        .map_err(explain)?;
    Ok("configured")
}

async fn apply_queue(c: &mut Clients, q: &Queue) -> anyhow::Result<&'static str> {
    let created = c
        .queues
        .create_queue(pb::CreateQueueRequest {
            queue: Some(pb::Queue::from(q)),
            dry_run: false,
        })
        .await;
    if created_now(created)? {
        return Ok("created");
    }
    let current = c
        .queues
        .get_queue(pb::GetQueueRequest {
            name: q.meta.name.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let current = Queue::try_from(current)?;
    if current.spec == q.spec && current.meta.labels == q.meta.labels {
        return Ok("unchanged");
    }
    c.queues
        .update_queue(pb::UpdateQueueRequest {
            queue: Some(pb::Queue::from(q)),
            expected_resource_version: current.meta.resource_version,
            dry_run: false,
        })
        .await
        .map_err(explain)?;
    Ok("configured")
}

/// `true` when a create succeeded, `false` when the object already exists (apply then
/// compares and updates), an error otherwise.
fn created_now<T>(result: Result<T, tonic::Status>) -> anyhow::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::AlreadyExists => Ok(false),
        Err(s) => Err(explain(s)),
    }
}
