//! `uni-scheduler`: serves the v1 API on every replica; the elected leader also schedules.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing::info;
use uni_core::catalog::Catalog;
use uni_core::store::{EtcdOptions, EtcdStore, KvStore};
use uni_scheduler::config::{Cli, Command, Config};
use uni_scheduler::control_plane::ControlPlane;
use uni_scheduler::init::{bootstrap_token, init, InitOptions};

mod dev;

// Placement, the watch cache and gRPC allocate small objects at a high rate from several
// threads; glibc's malloc spent about a tenth of the scheduler's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut cli = Cli::parse();
    if let Some(Command::BootstrapToken { dir, ttl_hours }) = &cli.command {
        let t = bootstrap_token(dir, Duration::from_secs(ttl_hours * 3600))?;
        println!(
            "bootstrap token written to {}; agents may join with it until {}",
            t.file.display(),
            t.expires
        );
        return Ok(());
    }
    if let Some(Command::Init {
        dir,
        server_names,
        server,
        context,
        no_context,
    }) = cli.command.take()
    {
        let done = init(&InitOptions {
            dir,
            server_names,
            server_url: server,
            context: (!no_context).then_some(context.clone()),
        })?;
        println!(
            "cluster CA, server certificate and admin token written to {}",
            done.dir.display()
        );
        println!(
            "start the scheduler with: uni-scheduler --config {}",
            done.config.display()
        );
        if !no_context {
            println!(
                "unictl context {context:?} written to {} and made current",
                uni_core::client::path().display()
            );
        }
        return Ok(());
    }
    let config = Config::resolve(cli)?;
    let catalog = Arc::new(Catalog::load(config.catalog.as_deref())?);
    if config.dev {
        return dev::run(config, catalog).await;
    }
    let store: Arc<dyn KvStore> = Arc::new(
        EtcdStore::connect_with(&config.etcd_endpoints, &etcd_options(&config.security)?)
            .await
            .context("connecting to etcd")?,
    );
    let plane = ControlPlane::start(store, catalog, &config).await?;
    // Tests and scripts read these lines to find ports chosen by the system.
    println!("api listening on {}", plane.api_addr);
    println!("metrics listening on {}", plane.metrics_addr);
    println!("gateway listening on {}", plane.gateway_addr);

    shutdown_signal().await?;
    info!("shutting down: no new requests, finishing commits in flight, resigning");
    plane.shutdown().await;
    info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

fn etcd_options(s: &uni_scheduler::config::Security) -> anyhow::Result<EtcdOptions> {
    EtcdOptions::from_files(
        s.etcd_ca.as_deref(),
        s.etcd_cert.as_deref(),
        s.etcd_key.as_deref(),
    )
    .context("etcd TLS")
}
