//! `unictl get`: tables, `-o wide|yaml|json|name`, label selectors, `--watch`.

use futures::StreamExt;
use uni_core::model::{Workload, WorkloadKind};
use uni_proto::v1 as pb;

use super::{list_nodes, list_queues, list_workloads, now, resource, Ctx, Resource};
use crate::client::explain;
use crate::manifest::Object;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// workloads, inferenceservices, trainingjobs, nodes, queues or rolebindings (or TYPE/NAME).
    resource: String,
    /// Only this object.
    name: Option<String>,
    #[arg(short = 'o', long, default_value = "")]
    output: String,
    /// Label selector, e.g. app=web,tier!=cache.
    #[arg(short = 'l', long, default_value = "")]
    selector: String,
    /// After listing, print changes as they happen (workloads and nodes).
    #[arg(short = 'w', long)]
    watch: bool,
    /// Role bindings: the cluster-wide ones rather than the namespace's.
    #[arg(long)]
    cluster_wide: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let format: Format = args.output.parse().map_err(anyhow::Error::msg)?;
    let name = args
        .name
        .clone()
        .or_else(|| args.resource.split_once('/').map(|(_, n)| n.to_string()));
    let mut c = ctx.clients().await?;
    let text = match resource(&args.resource)? {
        Resource::Workloads(kind) => {
            let mut ws = list_workloads(&mut c, ctx, &args.selector, kind).await?;
            if let Some(n) = &name {
                ws.retain(|w| &w.meta.name == n);
                if ws.is_empty() {
                    anyhow::bail!(
                        "workload {:?} not found in namespace {:?}",
                        n,
                        ctx.namespace
                    );
                }
            }
            match format {
                Format::Table | Format::Wide => output::workloads_table(
                    &ws,
                    &output::WorkloadColumns {
                        wide: format == Format::Wide,
                        namespace: ctx.all_namespaces,
                        endpoint: kind == Some(WorkloadKind::InferenceService),
                    },
                    now(),
                ),
                _ => output::render_objects(
                    &ws.into_iter().map(Object::Workload).collect::<Vec<_>>(),
                    format,
                )?,
            }
        }
        Resource::Nodes => {
            let mut nodes = list_nodes(&mut c, &args.selector).await?;
            if let Some(n) = &name {
                nodes.retain(|x| &x.meta.name == n);
                if nodes.is_empty() {
                    anyhow::bail!("node {n:?} not found");
                }
            }
            match format {
                Format::Table | Format::Wide => output::nodes_table(&nodes, format == Format::Wide),
                Format::Name => nodes
                    .iter()
                    .map(|n| format!("node/{}\n", n.meta.name))
                    .collect(),
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&nodes)?),
                Format::Yaml => serde_yaml::to_string(&nodes)?,
            }
        }
        Resource::RoleBindings => {
            let bindings = match &name {
                Some(n) => vec![super::access::get(&mut c, ctx, n, args.cluster_wide).await?],
                None => super::access::list(&mut c, ctx, args.cluster_wide).await?,
            };
            super::access::render(&bindings, format)?
        }
        Resource::Queues => {
            let mut qs = list_queues(&mut c, &args.selector).await?;
            if let Some(n) = &name {
                qs.retain(|q| &q.meta.name == n);
                if qs.is_empty() {
                    anyhow::bail!("queue {n:?} not found");
                }
            }
            match format {
                Format::Table | Format::Wide => output::queues_table(&qs, now()),
                _ => output::render_objects(
                    &qs.into_iter().map(Object::Queue).collect::<Vec<_>>(),
                    format,
                )?,
            }
        }
    };
    print!("{text}");
    if args.watch {
        watch(ctx, &args, format).await?;
    }
    Ok(())
}

/// Follows workload changes, one line (or document) per change, until interrupted.
async fn watch(ctx: &Ctx, args: &Args, format: Format) -> anyhow::Result<()> {
    let Resource::Workloads(kind) = resource(&args.resource)? else {
        anyhow::bail!("--watch is supported for workloads");
    };
    let mut c = ctx.clients().await?;
    let listed = c
        .workloads
        .list_workloads(pb::ListWorkloadsRequest {
            namespace: ctx.namespace.clone(),
            all_namespaces: ctx.all_namespaces,
            label_selector: args.selector.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut stream = c
        .workloads
        .watch_workloads(pb::WatchWorkloadsRequest {
            namespace: ctx.namespace.clone(),
            all_namespaces: ctx.all_namespaces,
            label_selector: args.selector.clone(),
            resource_version: listed.resource_version,
            ..Default::default()
        })
        .await
        .map_err(explain)?
        .into_inner();
    while let Some(event) = stream.next().await {
        let event = event.map_err(explain)?;
        let Some(w) = event.workload else { continue };
        let w = Workload::try_from(w)?;
        if kind.is_some_and(|k| w.kind() != k) {
            continue;
        }
        let text = match format {
            Format::Table | Format::Wide => {
                let table = output::workloads_table(
                    &[w],
                    &output::WorkloadColumns {
                        wide: format == Format::Wide,
                        namespace: ctx.all_namespaces,
                        endpoint: kind == Some(WorkloadKind::InferenceService),
                    },
                    now(),
                );
                // Only the row: the header was printed with the listing.
                table.lines().nth(1).unwrap_or_default().to_string() + "\n"
            }
            _ => output::render_objects(&[Object::Workload(w)], format)?,
        };
        print!("{text}");
    }
    Ok(())
}
