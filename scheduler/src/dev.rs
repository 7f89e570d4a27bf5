//! Dev mode: the whole control plane and an agent for this machine in one process, on the
//! embedded store. No etcd; data under one directory; loopback only, no authentication.

use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};
use uni_agent::agent::{Agent, AgentConfig};
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

    // This machine's agent, on the same store: it registers the node and runs replicas.
    let mut agent_config = AgentConfig::new(node_name(), config.data_dir.join("agent"));
    agent_config.listen = "127.0.0.1:0".parse()?;
    agent_config.address = Some("127.0.0.1".into());
    agent_config.catalog = config.catalog.clone();
    let agent = Agent::new(agent_config, store.clone())
        .start()
        .await
        .context("starting the local agent")?;

    println!("dev mode: data in {}", config.data_dir.display());
    println!("api listening on {}", plane.api_addr);
    println!("metrics listening on {}", plane.metrics_addr);
    println!("agent listening on {}", agent.grpc_addr());

    crate::shutdown_signal().await?;
    info!("shutting down dev mode");
    // The agent first: it stops its replicas and revokes its lease while the API still runs.
    agent.shutdown().await;
    plane.shutdown().await;
    drop(store);
    if let Ok(store) = Arc::try_unwrap(embedded) {
        store.close().await;
    }
    Ok(())
}

/// This machine's host name as a node name (lowercase DNS-1123), or "dev" without one.
fn node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "dev".into()
    } else {
        name
    }
}
