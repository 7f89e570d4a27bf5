//! `unictl rollout status|history|undo workload/NAME`: an inference service's rolling
//! updates, as `kubectl rollout` shows a Deployment's.

use std::time::Duration;

use clap::Subcommand;
use futures::StreamExt;
use uni_core::model::{Workload, WorkloadSpec};
use uni_proto::v1 as pb;

use super::{get_workload, now, Ctx};
use crate::client::explain;
use crate::output::table::{age, Table};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Follow the rollout until every replica runs the current revision and is ready.
    Status {
        /// `workload/NAME` or just NAME.
        target: String,
        /// Print the state once instead of waiting.
        #[arg(long)]
        no_wait: bool,
        /// Give up after this many seconds (exit status 1).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// The revisions the service has run.
    History { target: String },
    /// Go back to a revision (default: the one before the current), by a rolling update.
    Undo {
        target: String,
        #[arg(long, default_value_t = 0)]
        to_revision: u32,
    },
}

fn name(target: &str) -> &str {
    target.split_once('/').map_or(target, |(_, n)| n)
}

/// One line about the rollout, and whether it is done.
fn progress(w: &Workload) -> anyhow::Result<(String, bool)> {
    let WorkloadSpec::Inference(spec) = &w.spec else {
        anyhow::bail!(
            "{} is a training job; rollouts are for inference services",
            w.meta.name
        );
    };
    let s = &w.status;
    let desired = spec.replicas.desired;
    let old = s
        .replicas
        .iter()
        .filter(|r| r.revision != s.revision)
        .count();
    let done = s.updated_ready_replicas >= desired && s.updated_replicas == desired && old == 0;
    let line = if done {
        format!(
            "inferenceservice {:?} rolled out: revision {}, {desired} of {desired} ready",
            w.meta.name, s.revision
        )
    } else {
        let why = if s.rollout.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.rollout)
        };
        format!(
            "waiting for inferenceservice {:?}: revision {}, {} of {desired} updated, {} ready, \
             {old} old{why}",
            w.meta.name, s.revision, s.updated_replicas, s.updated_ready_replicas
        )
    };
    Ok((line, done))
}

pub async fn run(ctx: &Ctx, cmd: RolloutCommand) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    match cmd {
        RolloutCommand::Status {
            target,
            no_wait,
            timeout,
        } => {
            let name = name(&target);
            let w = get_workload(&mut c, &ctx.namespace, name).await?;
            let (line, done) = progress(&w)?;
            println!("{line}");
            if done || no_wait {
                return Ok(());
            }
            let mut stream = c
                .workloads
                .watch_workloads(pb::WatchWorkloadsRequest {
                    namespace: ctx.namespace.clone(),
                    resource_version: w.meta.resource_version,
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            let mut last = line;
            let follow = async {
                while let Some(event) = stream.next().await {
                    let Some(w) = event.map_err(explain)?.workload else {
                        continue;
                    };
                    let w = Workload::try_from(w)?;
                    if w.meta.name != name {
                        continue;
                    }
                    let (line, done) = progress(&w)?;
                    if line != last {
                        println!("{line}");
                        last = line;
                    }
                    if done {
                        return Ok(());
                    }
                }
                anyhow::bail!("the watch ended before the rollout did")
            };
            tokio::time::timeout(Duration::from_secs(timeout), follow)
                .await
                .map_err(|_| anyhow::anyhow!("timed out after {timeout}s: {last}"))?
        }
        RolloutCommand::History { target } => {
            let w = get_workload(&mut c, &ctx.namespace, name(&target)).await?;
            if !matches!(w.spec, WorkloadSpec::Inference(_)) {
                anyhow::bail!(
                    "{} is a training job; rollouts are for inference services",
                    w.meta.name
                );
            }
            let mut t = Table::new(vec!["REVISION", "AGE", "REPLICAS", "COMMAND"]);
            let now = now();
            for r in &w.status.revisions {
                let running = w
                    .status
                    .replicas
                    .iter()
                    .filter(|v| v.revision == r.revision)
                    .count();
                let mut rev = r.revision.to_string();
                if r.revision == w.status.revision {
                    rev.push_str(" (current)");
                }
                t.row(vec![
                    rev,
                    age(r.created.0, now),
                    running.to_string(),
                    r.summary.clone(),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        RolloutCommand::Undo {
            target,
            to_revision,
        } => {
            let w = c
                .workloads
                .rollback_workload(pb::RollbackWorkloadRequest {
                    namespace: ctx.namespace.clone(),
                    name: name(&target).to_string(),
                    to_revision,
                })
                .await
                .map_err(explain)?
                .into_inner();
            let w = Workload::try_from(w)?;
            println!("inferenceservice/{} rolled back", w.meta.name);
            Ok(())
        }
    }
}
