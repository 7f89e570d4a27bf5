//! `uni-agent`: the Universal node agent (or, with `--simulate N`, N simulated nodes).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_agent::agent::detect_address;
use uni_agent::config::{Cli, Command, Config};
use uni_agent::credentials::NodeCredentials;
use uni_agent::{shim, simulate, Agent};
use uni_core::store::{EtcdOptions, EtcdStore, KvStore, RemoteStore};
use uni_core::Backoff;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shim forks: it must run before any thread (the async runtime) exists.
    if let Some(Command::Shim { spec }) = &cli.command {
        return ExitCode::from(u8::try_from(shim::run_process(spec)).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uni-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uni-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::resolve(cli)?;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = shutdown_signal().await {
            warn!(error = %e, "cannot listen for signals");
        }
        signal.cancel();
    });
    // The address is detected from the route to what the agent talks to.
    let peer = match &config.gateway {
        Some(g) => Some(g.server.as_str()),
        None => config.etcd_endpoints.first().map(String::as_str),
    }
    .map(|e| {
        let e = e
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        e.split('/').next().unwrap_or(e).to_string()
    });
    let address = config
        .agent
        .address
        .clone()
        .unwrap_or_else(|| detect_address(peer.as_deref()));
    let mut renewal = None;
    let store: Arc<dyn KvStore> = match &config.gateway {
        Some(g) => {
            let creds = NodeCredentials {
                server: g.server.clone(),
                ca: g.ca.clone(),
                cert: g.cert.clone(),
                key: g.key.clone(),
                bootstrap_token_file: g.bootstrap_token_file.clone(),
                node: config.agent.node_name.clone(),
            };
            let Some(remote) = through_gateway(&creds, &stop).await? else {
                return Ok(());
            };
            renewal = Some(tokio::spawn(
                creds.keep_renewed(remote.clone(), stop.child_token()),
            ));
            remote
        }
        None => {
            let Some(store) = connect(&config.etcd_endpoints, &config.etcd, &stop).await else {
                return Ok(());
            };
            store
        }
    };
    // Tests and scripts read these lines to find ports chosen by the system.
    if let Some(sim) = config.simulate {
        let running = simulate::start(
            sim,
            store,
            config.agent.listen,
            config.agent.metrics_listen,
            address,
        )
        .await?;
        println!("agent listening on {}", running.grpc_addr);
        if let Some(m) = running.metrics_addr {
            println!("metrics listening on {m}");
        }
        println!("simulated nodes registered: {}", running.fleet.registered());
        stop.cancelled().await;
        info!("shutting down the simulation");
        running.shutdown().await;
        return Ok(());
    }
    let mut agent_config = config.agent;
    agent_config.address = Some(address);
    if let Some(g) = &config.gateway {
        agent_config.tls = Some(g.log_tls());
    }
    let running = Agent::new(agent_config, store).start().await?;
    println!("agent listening on {}", running.grpc_addr());
    if let Some(m) = running.metrics_addr() {
        println!("metrics listening on {m}");
    }
    stop.cancelled().await;
    info!("shutting down");
    running.shutdown().await;
    if let Some(task) = renewal {
        let _ = task.await;
    }
    Ok(())
}

/// Joins if needed and connects through the scheduler, retrying until it answers or the
/// agent is told to stop; a setting that cannot work fails at once.
async fn through_gateway(
    creds: &NodeCredentials,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<RemoteStore>>> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let attempt = async {
            creds.ensure().await?;
            let store = RemoteStore::new(creds.connect().await?);
            store.revision().await?;
            Ok::<_, uni_agent::error::Error>(store)
        };
        match attempt.await {
            Ok(s) => return Ok(Some(Arc::new(s))),
            Err(e @ uni_agent::error::Error::Config(_)) => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, server = %creds.server, "control plane unreachable; retrying")
            }
        }
        if !backoff.wait(stop).await {
            return Ok(None);
        }
    }
}

/// Connects to etcd, retrying until it answers or the agent is told to stop.
async fn connect(
    endpoints: &[String],
    opts: &EtcdOptions,
    stop: &CancellationToken,
) -> Option<Arc<dyn KvStore>> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match EtcdStore::connect_with(endpoints, opts)
            .await
            .context("connecting to etcd")
        {
            Ok(s) => return Some(Arc::new(s)),
            Err(e) => warn!(error = %format!("{e:#}"), "etcd unreachable; retrying"),
        }
        if !backoff.wait(stop).await {
            return None;
        }
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
