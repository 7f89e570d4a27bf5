//! `unictl delete TYPE NAME` or `unictl delete -f FILE`.

use tonic::Code;
use uni_proto::v1 as pb;

use super::{resource, Ctx, Resource};
use crate::client::{explain, Clients};
use crate::manifest::Object;

pub async fn run(
    ctx: &Ctx,
    kind: Option<String>,
    name: Option<String>,
    files: &[String],
    cluster_wide: bool,
) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    if !files.is_empty() {
        let docs = super::apply::load(files, None)?;
        for d in docs {
            let meta = d.object.meta();
            let kind = match d.object {
                Object::Workload(_) => Resource::Workloads(None),
                Object::Queue(_) => Resource::Queues,
            };
            let deleted = delete(&mut c, kind, &meta.namespace, &meta.name).await?;
            println!(
                "{} {}",
                d.object.reference(),
                if deleted { "deleted" } else { "not found" }
            );
        }
        return Ok(());
    }
    let (Some(kind), Some(name)) = (
        kind.clone(),
        name.or_else(|| kind.and_then(|k| k.split_once('/').map(|(_, n)| n.to_string()))),
    ) else {
        anyhow::bail!("name a TYPE and NAME, or give -f FILE");
    };
    let r = resource(&kind)?;
    let ns = if cluster_wide { "" } else { &ctx.namespace };
    if !delete(&mut c, r, ns, &name).await? {
        anyhow::bail!("{kind} {name:?} not found");
    }
    let shown = kind
        .split('/')
        .next()
        .unwrap_or(&kind)
        .trim_end_matches('s');
    println!("{shown}/{name} deleted");
    Ok(())
}

/// Deletes one object; `false` when it did not exist.
async fn delete(c: &mut Clients, kind: Resource, ns: &str, name: &str) -> anyhow::Result<bool> {
    let result = match kind {
        Resource::Workloads(_) => c
            .workloads
            .delete_workload(pb::DeleteWorkloadRequest {
                namespace: ns.to_string(),
                name: name.to_string(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Resource::Queues => c
            .queues
            .delete_queue(pb::DeleteQueueRequest {
                name: name.to_string(),
                expected_resource_version: 0,
            })
            .await
            .map(|_| ()),
        Resource::RoleBindings => return super::access::delete(c, ns, name).await,
        Resource::Nodes => {
            anyhow::bail!("nodes leave the cluster when their agent stops; use drain")
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(explain(s)),
    }
}
