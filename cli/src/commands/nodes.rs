//! Node verbs: cordon, uncordon, drain, top.

use uni_proto::v1 as pb;

use super::{list_nodes, resource, Ctx, Resource};
use crate::client::explain;
use crate::output;

pub async fn cordon(ctx: &Ctx, node: &str, on: bool) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    if on {
        c.nodes
            .cordon_node(pb::CordonNodeRequest { name: node.into() })
            .await
            .map_err(explain)?;
        println!("node/{node} cordoned");
    } else {
        c.nodes
            .uncordon_node(pb::UncordonNodeRequest { name: node.into() })
            .await
            .map_err(explain)?;
        println!("node/{node} uncordoned");
    }
    Ok(())
}

pub async fn drain(ctx: &Ctx, node: &str) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    let resp = c
        .nodes
        .drain_node(pb::DrainNodeRequest {
            name: node.into(),
            grace_period_seconds: None,
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "node/{node} cordoned; {} replica(s) will be placed elsewhere",
        resp.evicted_replicas
    );
    Ok(())
}

pub async fn top(ctx: &Ctx, what: &str) -> anyhow::Result<()> {
    if resource(what)? != Resource::Nodes {
        anyhow::bail!("top supports nodes");
    }
    let mut c = ctx.clients().await?;
    let nodes = list_nodes(&mut c, "").await?;
    print!("{}", output::top_nodes_table(&nodes));
    Ok(())
}
