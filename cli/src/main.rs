//! `unictl`: the kubectl-style command line for Universal.

mod client;
mod commands;
mod manifest;
mod output;

use clap::{CommandFactory, Parser, Subcommand};

use commands::Ctx;
use uni_core::client::{Overrides, Target};

#[derive(Parser)]
#[command(
    name = "unictl",
    version,
    about = "Control a Universal cluster",
    propagate_version = true
)]
struct Cli {
    /// API server, e.g. https://127.0.0.1:7070 (overrides $UNIVERSAL_SERVER and the context).
    #[arg(long, global = true)]
    server: Option<String>,
    /// Bearer token (overrides $UNIVERSAL_TOKEN and the context's credentials).
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
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
        /// A cluster-wide role binding rather than one in the namespace.
        #[arg(long)]
        cluster_wide: bool,
    },
    /// Create an object from flags: `create rolebinding NAME --role ROLE --user U --group G`.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Your identity and permissions: `auth whoami`, `auth can-i VERB RESOURCE`.
    #[command(subcommand)]
    Auth(commands::access::AuthCommand),
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
    /// An inference service's rolling updates: `rollout status|history|undo workload/NAME`.
    #[command(subcommand)]
    Rollout(commands::rollout::RolloutCommand),
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

#[derive(Subcommand)]
enum CreateCommand {
    /// Grant a role to users and groups in the namespace (or, with --cluster-wide, everywhere).
    #[command(alias = "rb")]
    Rolebinding(commands::access::CreateArgs),
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
    let target = Target::resolve(&Overrides {
        server: cli.server.as_deref(),
        context: cli.context.as_deref(),
        token: cli.token.as_deref(),
    })?;
    let ctx = Ctx {
        namespace_explicit: cli.namespace.is_some(),
        namespace: cli.namespace.unwrap_or_else(|| target.namespace.clone()),
        target,
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
            cluster_wide,
        } => commands::delete::run(&ctx, resource, name, &files, cluster_wide).await,
        Command::Create(CreateCommand::Rolebinding(args)) => {
            commands::access::create(&ctx, args).await
        }
        Command::Auth(cmd) => commands::access::auth(&ctx, cmd).await,
        Command::Logs(args) => commands::logs::run(&ctx, args).await,
        Command::Scale {
            target,
            replicas,
            min,
            max,
        } => commands::scale::run(&ctx, &target, replicas, min, max).await,
        Command::Rollout(cmd) => commands::rollout::run(&ctx, cmd).await,
        Command::Cordon { node } => commands::nodes::cordon(&ctx, &node, true).await,
        Command::Uncordon { node } => commands::nodes::cordon(&ctx, &node, false).await,
        Command::Drain { node } => commands::nodes::drain(&ctx, &node).await,
        Command::Top { resource } => commands::nodes::top(&ctx, &resource).await,
        Command::Events { involved } => commands::events::run(&ctx, involved.as_deref()).await,
        Command::Version => commands::version::run(&ctx).await,
        Command::Config(_) | Command::Completion { .. } => Ok(()),
    }
}
