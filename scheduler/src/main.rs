//! `uni-scheduler`: serves the v1 API on every replica; the elected leader also schedules.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tracing::info;
use uni_core::catalog::Catalog;
use uni_core::store::{EtcdStore, KvStore};
use uni_scheduler::config::{Cli, Config};
use uni_scheduler::control_plane::ControlPlane;

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
    let config = Config::resolve(Cli::parse())?;
    let catalog = Arc::new(Catalog::load(config.catalog.as_deref())?);
    if config.dev {
        return dev::run(config, catalog).await;
    }
    let store: Arc<dyn KvStore> = Arc::new(
        EtcdStore::connect(&config.etcd_endpoints)
            .await
            .context("connecting to etcd")?,
    );
    let plane = ControlPlane::start(store, catalog, &config).await?;
    // Tests and scripts read these lines to find ports chosen by the system.
    println!("api listening on {}", plane.api_addr);
    println!("metrics listening on {}", plane.metrics_addr);

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
