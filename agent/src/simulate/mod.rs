//! `uni-agent --simulate N --profile FILE`: N simulated nodes in one process, each registered
//! under its own lease with hardware from the profile; their allocations "run" without
//! processes and are reported Running. Cheap enough for 10,000 nodes: one task registers,
//! one keeps every lease alive, one watch on `allocations/` is demultiplexed by node, and one
//! status writer batches reports; per node only its name, lease and profile index are kept.

mod fleet;
mod logs;
pub mod profile;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::store::KvStore;

use crate::error::Result;
use crate::metrics::{self, Metrics};
use crate::runtime::StatusReporter;
use crate::server;

pub use fleet::Fleet;

#[derive(Debug, Clone)]
pub struct SimulateConfig {
    pub nodes: usize,
    pub profile: PathBuf,
    pub lease_ttl: Duration,
    /// Labels of every simulated node (the profile may add more).
    pub labels: BTreeMap<String, String>,
    pub catalog: Option<PathBuf>,
}

/// A started simulation.
pub struct RunningSimulation {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub fleet: Arc<Fleet>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Registers the nodes (returns once all are registered) and starts keeping them alive and
/// running their allocations.
pub async fn start(
    config: SimulateConfig,
    store: Arc<dyn KvStore>,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    address: String,
) -> Result<RunningSimulation> {
    let catalog = Catalog::load(config.catalog.as_deref())?;
    let profile = profile::load(&config.profile)?;
    let server::Listeners {
        grpc,
        grpc_addr,
        metrics: metrics_listener,
        metrics_addr,
    } = server::Listeners::bind(listen, metrics_listen).await?;
    let metrics = Metrics::new()?;
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.clone()
    };
    let endpoint = format!("http://{host}:{}", grpc_addr.port());
    let reporter = StatusReporter::default();
    let fleet = Arc::new(Fleet::new(
        &config,
        &profile,
        &catalog,
        store.clone(),
        address,
        endpoint,
        metrics.clone(),
        reporter.clone(),
    ));
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let c = cancel.clone();
    tasks.spawn(async move {
        if let Err(e) = server::serve(grpc, logs::NoLogs, None, c).await {
            warn!(error = %e, "gRPC server failed");
        }
    });
    if let Some(l) = metrics_listener {
        let (m, c) = (metrics.clone(), cancel.clone());
        tasks.spawn(async move {
            if let Err(e) = metrics::serve(l, m, c).await {
                warn!(error = %e, "metrics server failed");
            }
        });
    }
    tasks.spawn(reporter.run(store, cancel.clone()));
    let started = std::time::Instant::now();
    tokio::select! {
        _ = fleet.register_all(&cancel) => {}
        _ = cancel.cancelled() => {}
    }
    info!(
        nodes = fleet.len(),
        seconds = started.elapsed().as_secs_f64(),
        "simulated nodes registered"
    );
    tasks.spawn(fleet.clone().keep_alive(cancel.clone()));
    tasks.spawn(fleet.clone().run_allocations(cancel.clone()));
    Ok(RunningSimulation {
        grpc_addr,
        metrics_addr,
        fleet,
        cancel,
        tasks,
    })
}

impl RunningSimulation {
    /// Stops; leases are left to expire (the nodes then go NotReady as a lost fleet would).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
