//! Dev mode: the whole control plane and an agent for this machine in one process, on the
//! embedded store. No etcd; data under one directory; loopback only, TLS and an admin token
//! generated under the data directory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tracing::{info, warn};
use uni_agent::agent::{closed_to_others, Agent, AgentConfig};
use uni_core::catalog::Catalog;
use uni_core::store::{EmbeddedStore, KvStore};
use uni_scheduler::config::Config;
use uni_scheduler::control_plane::ControlPlane;
use uni_scheduler::init::{init, InitOptions, Initialized};

/// The `unictl` context dev mode writes and makes current.
pub const DEV_CONTEXT: &str = "dev";

pub async fn run(mut config: Config, catalog: Arc<Catalog>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    for addr in [config.listen, config.metrics_listen, config.gateway_listen] {
        if !addr.ip().is_loopback() {
            bail!("dev mode serves this machine only: {addr} is not a loopback address");
        }
    }
    // A CA, server certificate and admin token of its own, made on first start.
    let pki_dir = config.data_dir.join("pki");
    let pki = if pki_dir.join("ca.key").exists() {
        Initialized::existing(&pki_dir)?
    } else {
        init(&InitOptions {
            dir: pki_dir,
            server_names: Vec::new(),
            server_url: String::new(),
            context: None,
        })?
    };
    if !config.security.insecure {
        config.security = pki.security();
    }
    let path = config.data_dir.join("store.redb");
    let embedded = Arc::new(
        EmbeddedStore::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?,
    );
    let store: Arc<dyn KvStore> = embedded.clone();
    warn!("DEV MODE: for this machine only, with a CA and admin token of its own");
    let plane = ControlPlane::start(store.clone(), catalog, &config).await?;
    if !config.security.insecure {
        // `unictl` finds the API, trusts its CA and presents the admin token.
        pki.write_context(DEV_CONTEXT, &format!("https://{}", plane.api_addr))?;
    }

    // This machine's agent, on the same store: it registers the node and runs replicas.
    let mut agent_config = AgentConfig::new(node_name(), agent_dir(&config.data_dir)?);
    agent_config.listen = "127.0.0.1:0".parse()?;
    agent_config.address = Some("127.0.0.1".into());
    agent_config.catalog = config.catalog.clone();
    let agent = Agent::new(agent_config, store.clone())
        .start()
        .await
        .context("starting the local agent")?;

    println!("dev mode: data in {}", config.data_dir.display());
    if config.security.insecure {
        println!(
            "insecure: no unictl context written; use unictl --server http://{}",
            plane.api_addr
        );
    } else {
        println!(
            "unictl context {DEV_CONTEXT:?} written to {}",
            uni_core::client::path().display()
        );
    }
    println!("api listening on {}", plane.api_addr);
    println!("metrics listening on {}", plane.metrics_addr);
    println!("gateway listening on {}", plane.gateway_addr);
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

/// Where the agent keeps replica scratch directories: under the data directory, unless
/// replicas (which run as nobody when dev mode runs as root) could not reach them there, as
/// under root's 0700 home; then under /var/lib/universal.
fn agent_dir(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if closed_to_others(&dir).is_none() {
        return Ok(dir);
    }
    let shared = PathBuf::from(SHARED_AGENT_DIR);
    std::fs::create_dir_all(&shared).with_context(|| format!("creating {}", shared.display()))?;
    info!(dir = %shared.display(), "replica scratch directories outside the data directory, which others cannot search");
    Ok(shared)
}

/// The agent's directory in dev mode when the data directory is closed to other users.
const SHARED_AGENT_DIR: &str = "/var/lib/universal/dev-agent";

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
