//! `uni-scheduler`: serves the v1 API on every replica; the elected leader also schedules.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;
use uni_core::catalog::Catalog;
use uni_core::store::{EtcdStore, KvStore};
use uni_scheduler::api::ApiContext;
use uni_scheduler::cache::Cache;
use uni_scheduler::config::{Cli, Config};
use uni_scheduler::leader::{self, LeaderConfig};
use uni_scheduler::metrics::{self, Metrics};
use uni_scheduler::schedule::PlanConfig;
use uni_scheduler::server;

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
    let store: Arc<dyn KvStore> = Arc::new(
        EtcdStore::connect(&config.etcd_endpoints)
            .await
            .context("connecting to etcd")?,
    );
    let metrics = Metrics::new()?;
    let cache = Cache::new(catalog.clone());
    let root = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let api = TcpListener::bind(config.listen).await?;
    let metrics_listener = TcpListener::bind(config.metrics_listen).await?;
    // Tests and scripts read these lines to find ports chosen by the system.
    println!("api listening on {}", api.local_addr()?);
    println!("metrics listening on {}", metrics_listener.local_addr()?);

    tasks.spawn(cache.clone().run(store.clone(), root.child_token()));
    let ctx = ApiContext {
        store: store.clone(),
        cache: cache.clone(),
        catalog: catalog.clone(),
    };
    let api_cancel = root.child_token();
    tasks.spawn(async move {
        if let Err(e) = server::serve(api, ctx, api_cancel).await {
            tracing::error!(error = %e, "API server failed");
        }
    });
    let m = metrics.clone();
    let metrics_cancel = root.child_token();
    tasks.spawn(async move {
        if let Err(e) = metrics::serve(metrics_listener, m, metrics_cancel).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    let leader_config = LeaderConfig {
        identity: config.identity.clone(),
        lease_ttl: config.lease_ttl,
        plan: PlanConfig {
            node_grace: config.node_grace,
            ..PlanConfig::default()
        },
        max_in_flight: config.max_commits_in_flight,
    };
    tasks.spawn(leader::run(
        store,
        cache,
        metrics,
        leader_config,
        root.child_token(),
    ));

    shutdown_signal().await?;
    info!("shutting down: no new requests, finishing commits in flight, resigning");
    root.cancel();
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
