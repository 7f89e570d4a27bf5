//! `unictl scale workload/NAME --replicas N` (inference) or `--min/--max` (training workers).

use uni_core::model::Workload;
use uni_proto::v1 as pb;

use super::Ctx;
use crate::client::explain;

pub async fn run(
    ctx: &Ctx,
    target: &str,
    replicas: Option<u32>,
    min: Option<u32>,
    max: Option<u32>,
) -> anyhow::Result<()> {
    if replicas.is_none() && min.is_none() && max.is_none() {
        anyhow::bail!("give --replicas, or --min/--max");
    }
    let name = target.split_once('/').map_or(target, |(_, n)| n);
    let mut c = ctx.clients().await?;
    let w = c
        .workloads
        .scale_workload(pb::ScaleWorkloadRequest {
            namespace: ctx.namespace.clone(),
            name: name.to_string(),
            desired: replicas,
            min,
            max,
            expected_resource_version: 0,
        })
        .await
        .map_err(explain)?
        .into_inner();
    let w = Workload::try_from(w)?;
    println!(
        "{}/{} scaled",
        w.kind().as_str().to_ascii_lowercase(),
        w.meta.name
    );
    Ok(())
}
