//! `unictl`: the kubectl-style command line for Universal.

mod client;
mod commands;
mod config;
mod manifest;
mod output;

use clap::{CommandFactory, Parser, Subcommand};

use commands::Ctx;

#[derive(Parser)]
#[command(
    name = "unictl",
    version,
    about = "Control a Universal cluster",
    propagate_version = true
)]
struct Cli {
    /// API server, e.g. http://127.0.0.1:7070 (overrides $UNIVERSAL_SERVER and the context).
    #[arg(long, global = true)]
    server: Option<String>,
    /// Context from the config file to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Namespace (default: the context's, else "default").
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update objects from manifests (files, directories, or - for stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// List objects: workloads (wl), inferenceservices (isvc), trainingjobs (tj), nodes (no), queues (q).
    Get(commands::get::Args),
    /// Show an object in detail: spec, status, placement per replica, events.
    Describe { resource: String, name: String },
    /// Delete objects by name or from manifests.
    Delete {
        resource: Option<String>,
        name: Option<String>,
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
    },
    /// Print a workload's replica output.
    Logs(commands::logs::Args),
    /// Change the replica count (inference) or the worker range (training).
    Scale {
        /// `workload/NAME` or just NAME.
        target: String,
        #[arg(long)]
        replicas: Option<u32>,
        #[arg(long)]
        min: Option<u32>,
        #[arg(long)]
        max: Option<u32>,
    },
    /// Mark a node unschedulable.
    Cordon { node: String },
    /// Mark a node schedulable again.
    Uncordon { node: String },
    /// Cordon a node and move its replicas elsewhere.
    Drain { node: String },
    /// Resource use: `top nodes`.
    Top { resource: String },
    /// Events, newest last.
    Events {
        /// Only events about this object, e.g. workload/web.
        #[arg(long = "for")]
        involved: Option<String>,
    },
    /// Client and server versions.
    Version,
    /// Contexts in the client config file.
    #[command(subcommand)]
    Config(commands::config::Command),
    /// Shell completion script.
    Completion { shell: clap_complete::Shell },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completion { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "unictl", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Config(c) = cli.command {
        return commands::config::run(c);
    }
    let (server, default_ns) = config::resolve(cli.server.as_deref(), cli.context.as_deref())?;
    let ctx = Ctx {
        server,
        namespace_explicit: cli.namespace.is_some(),
        namespace: cli.namespace.unwrap_or(default_ns),
        all_namespaces: cli.all_namespaces,
    };
    match cli.command {
        Command::Apply { files } => commands::apply::run(&ctx, &files).await,
        Command::Get(args) => commands::get::run(&ctx, args).await,
        Command::Describe { resource, name } => {
            commands::describe::run(&ctx, &resource, &name).await
        }
        Command::Delete {
            resource,
            name,
            files,
        } => commands::delete::run(&ctx, resource, name, &files).await,
        Command::Logs(args) => commands::logs::run(&ctx, args).await,
        Command::Scale {
            target,
            replicas,
            min,
            max,
        } => commands::scale::run(&ctx, &target, replicas, min, max).await,
        Command::Cordon { node } => commands::nodes::cordon(&ctx, &node, true).await,
        Command::Uncordon { node } => commands::nodes::cordon(&ctx, &node, false).await,
        Command::Drain { node } => commands::nodes::drain(&ctx, &node).await,
        Command::Top { resource } => commands::nodes::top(&ctx, &resource).await,
        Command::Events { involved } => commands::events::run(&ctx, involved.as_deref()).await,
        Command::Version => commands::version::run(&ctx).await,
        Command::Config(_) | Command::Completion { .. } => Ok(()),
    }
}
