//! `unictl logs WORKLOAD`: replica output, streamed through the API from the agents.

use std::io::Write;

use futures::StreamExt;
use uni_proto::v1 as pb;

use super::Ctx;
use crate::client::explain;

#[derive(clap::Args)]
pub struct Args {
    /// Workload name (or workload/NAME).
    workload: String,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only the last N lines of each replica.
    #[arg(long)]
    tail: Option<u32>,
    /// Only this replica (training: RANK).
    #[arg(long)]
    replica: Option<u32>,
    /// The run before the last restart.
    #[arg(short = 'p', long)]
    previous: bool,
}

pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let name = args
        .workload
        .split_once('/')
        .map_or(args.workload.as_str(), |(_, n)| n)
        .to_string();
    let mut c = ctx.clients().await?;
    let mut stream = c
        .logs
        .stream_logs(pb::StreamLogsRequest {
            namespace: ctx.namespace.clone(),
            workload: name,
            replica: args.replica,
            follow: args.follow,
            tail_lines: args.tail,
            previous: args.previous,
            ..Default::default()
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(explain)?;
        out.write_all(&chunk.data)?;
        out.flush()?;
    }
    Ok(())
}
