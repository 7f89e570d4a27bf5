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
use uni_agent::{shim, simulate, Agent};
use uni_core::store::{EtcdOptions, EtcdStore, KvStore};
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
    let Some(store) = connect(&config.etcd_endpoints, &config.etcd, &stop).await else {
        return Ok(());
    };
    let peer = config.etcd_endpoints.first().map(|e| {
        e.trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    });
    let address = config
        .agent
        .address
        .clone()
        .unwrap_or_else(|| detect_address(peer.as_deref()));
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
    let running = Agent::new(agent_config, store).start().await?;
    println!("agent listening on {}", running.grpc_addr());
    if let Some(m) = running.metrics_addr() {
        println!("metrics listening on {m}");
    }
    stop.cancelled().await;
    info!("shutting down");
    running.shutdown().await;
    Ok(())
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
