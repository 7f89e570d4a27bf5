//! Dev mode: the whole control plane and an agent for this machine in one process, on the
//! embedded store. No etcd; data under one directory; loopback only, no authentication.

use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::store::{EmbeddedStore, KvStore};
use uni_scheduler::config::Config;
use uni_scheduler::control_plane::ControlPlane;

pub async fn run(config: Config, catalog: Arc<Catalog>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let path = config.data_dir.join("store.redb");
    let embedded = Arc::new(
        EmbeddedStore::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?,
    );
    let store: Arc<dyn KvStore> = embedded.clone();
    warn!("DEV MODE: no authentication and no TLS; for this machine only");
    let plane = ControlPlane::start(store.clone(), catalog, &config).await?;
    println!("dev mode: data in {}", config.data_dir.display());
    println!("api listening on {}", plane.api_addr);
    println!("metrics listening on {}", plane.metrics_addr);

    crate::shutdown_signal().await?;
    info!("shutting down dev mode");
    plane.shutdown().await;
    drop(store);
    if let Ok(store) = Arc::try_unwrap(embedded) {
        store.close().await;
    }
    Ok(())
}
