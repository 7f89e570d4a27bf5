//! `uni-bench`: Universal's benchmarks. Each subcommand measures and reports; none asserts.

mod cost;
mod gateway;
mod replay;
mod soak;
mod store;
mod tenants;
mod throughput;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "uni-bench", version, about = "Universal benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Batched write rate of the store layer, etcd and embedded side by side.
    Store(store::Args),
    /// End-to-end placements/s through the API, against etcd's raw batched-write rate.
    Throughput(throughput::Args),
    /// Placement quality on the openb GPU trace, against the FGD paper's baselines.
    Replay(replay::Args),
    /// Hourly price of a workload mix: a fleet Universal packs against one instance each.
    Cost(cost::Args),
    /// Steady create/finish/delete churn for a set time: store size, scheduler memory and
    /// placement latency at the start and the end.
    Soak(soak::Args),
    /// The inference gateway against calling a replica directly (throughput, added latency),
    /// and the wait for a request at zero replicas.
    Gateway(gateway::Args),
    /// Teams sharing a fleet, replayed in simulated time through the scheduler's own
    /// queueing, admission, preemption and placement, under four policies.
    Tenants(tenants::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Store(args) => store::run(args).await,
        Command::Throughput(args) => throughput::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Cost(args) => cost::run(args).await,
        Command::Soak(args) => soak::run(args).await,
        Command::Tenants(args) => tenants::run(args).await,
        Command::Gateway(args) => gateway::run(args).await,
    }
}
