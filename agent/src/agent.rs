//! The agent: discovers the machine, registers the node, runs its allocations, serves logs
//! and metrics. [`Agent::start`] works over any [`KvStore`], so dev mode can run it in the
//! same process as the scheduler on the embedded store.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uni_core::catalog::Catalog;
use uni_core::model::Inventory;
use uni_core::store::keys::NodeKey;
use uni_core::store::KvStore;
use uni_core::tls::server::{ReloadingAcceptor, TlsFiles};

use crate::capacity::{self, Reserve};
use crate::cgroup::{CgroupConfig, CgroupManager};
use crate::devices::DeviceNodes;
use crate::discovery::{self, DiscoveryConfig};
use crate::error::{Error, Result};
use crate::logs::LogServer;
use crate::metrics::{self, Metrics};
use crate::registration::{Identity, Registration};
use crate::runtime::fence;
use crate::runtime::namespace_users::NamespaceUsers;
use crate::runtime::{
    register_replica_metrics, FinishedRuns, OnShutdown, ReplicaHost, ReplicaTable, Runtime,
    RuntimeOptions, ShimMode, StatusReporter,
};
use crate::server;

/// The version agents report in their node status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub labels: BTreeMap<String, String>,
    /// gRPC (logs) listener; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `/metrics` listener; `None` serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Address other nodes and the scheduler reach this one at; detected when unset.
    pub address: Option<String>,
    /// Replica state, logs and working directories.
    pub data_dir: PathBuf,
    pub lease_ttl: Duration,
    /// Hardware catalog replacing the built-in one.
    pub catalog: Option<PathBuf>,
    pub reserve: Reserve,
    pub cgroups: CgroupConfig,
    /// How replica processes are supervised; `None` finds the shim (see [`ShimMode`]).
    pub shim: Option<ShimMode>,
    pub discovery: DiscoveryConfig,
    /// Use this inventory instead of discovering one (tests, dev mode).
    pub inventory: Option<Inventory>,
    /// Device node of accelerators by index, replacing what discovery found; an accelerator
    /// with none here or from discovery is `/dev/nvidia<index>`. Replicas can open only the
    /// nodes of the accelerators bound to them.
    pub device_paths: BTreeMap<u32, PathBuf>,
    pub runtime: RuntimeOptions,
    /// How often the hardware is discovered again to notice changes.
    pub rediscover_interval: Duration,
    /// Log streams served at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_log_streams: usize,
    /// Serve the log service over TLS with the node certificate (client CA: the cluster
    /// CA), to scheduler replicas only.
    pub tls: Option<TlsFiles>,
}

/// How often the log service's certificate files are checked for renewal.
const TLS_RELOAD: Duration = Duration::from_secs(30);

impl AgentConfig {
    /// Defaults for a node named `node_name` keeping its files in `data_dir`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_name: node_name.into(),
            labels: BTreeMap::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 7072)),
            metrics_listen: None,
            address: None,
            data_dir: data_dir.into(),
            lease_ttl: Duration::from_secs(10),
            catalog: None,
            reserve: Reserve::default(),
            cgroups: CgroupConfig::default(),
            shim: None,
            discovery: DiscoveryConfig::default(),
            inventory: None,
            device_paths: BTreeMap::new(),
            // Embedded agents stop their replicas with their host process; the uni-agent
            // daemon leaves them running for the next agent (see `config`).
            runtime: RuntimeOptions {
                on_shutdown: OnShutdown::Stop,
                ..RuntimeOptions::default()
            },
            rediscover_interval: Duration::from_secs(60),
            max_log_streams: crate::logs::DEFAULT_MAX_STREAMS,
            tls: None,
        }
    }
}

pub struct Agent {
    config: AgentConfig,
    store: Arc<dyn KvStore>,
}

/// A started agent; [`RunningAgent::shutdown`] stops it.
pub struct RunningAgent {
    grpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    runtime_cancel: CancellationToken,
    runtime: JoinHandle<()>,
    rest_cancel: CancellationToken,
    tasks: JoinSet<()>,
    log_streams: TaskTracker,
}

impl Agent {
    pub fn new(config: AgentConfig, store: Arc<dyn KvStore>) -> Self {
        Self { config, store }
    }

    /// Runs until `cancel`, then shuts down.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let running = self.start().await?;
        cancel.cancelled().await;
        running.shutdown().await;
        Ok(())
    }

    /// Discovers the machine, binds the listeners and starts every task.
    pub async fn start(self) -> Result<RunningAgent> {
        let config = self.config;
        NodeKey::new(config.node_name.as_str())
            .map_err(|e| Error::Config(format!("node name {:?}: {e}", config.node_name)))?;
        let catalog = Catalog::load(config.catalog.as_deref())?;
        let discovered = match config.inventory.clone() {
            Some(inventory) => discovery::Discovered {
                inventory,
                ..discovery::Discovered::default()
            },
            None => {
                let d = config.discovery.clone();
                tokio::task::spawn_blocking(move || discovery::discover_with_devices(&d))
                    .await
                    .map_err(|e| Error::Discovery(e.to_string()))??
            }
        };
        let mut device_paths = discovered.device_paths;
        device_paths.extend(config.device_paths.clone());
        let device_nodes = DeviceNodes::for_inventory(&discovered.inventory, &device_paths);
        let inventory = discovered.inventory;
        let valued = capacity::value(inventory, &catalog, config.reserve);
        info!(
            node = %config.node_name,
            cpu = %valued.inventory.cpu.model,
            threads = valued.inventory.cpu.threads,
            memory_bytes = valued.inventory.memory_bytes,
            accelerators = valued.inventory.accelerators.len(),
            compute_milli = valued.capacity.compute_milli,
            class = %valued.node_class,
            "hardware discovered"
        );
        let cgroups = CgroupManager::detect(&config.cgroups, valued.inventory.cpu.ucu_per_core);
        let shim = config.shim.clone().unwrap_or_else(find_shim);
        let mut opts = config.runtime.clone();
        if shim == ShimMode::InProcess && opts.on_shutdown == OnShutdown::Leave {
            warn!("no uni-agent shim executable: replicas are supervised in this process and stop with it");
            opts.on_shutdown = OnShutdown::Stop;
        }
        let root = config.data_dir.join("replicas");
        std::fs::create_dir_all(&root).map_err(Error::at("creating", &root))?;
        if let Some(dir) = closed_to_others(&root) {
            warn!(
                dir = %dir.display(),
                "replicas run as other users and cannot reach their scratch directories under \
                 this directory by path (it is not searchable by others): chmod o+x it or choose \
                 another --data-dir"
            );
        }

        let namespace_users = opts
            .namespace_users
            .clone()
            .map(|range| NamespaceUsers::open(&config.data_dir, range))
            .transpose()?;

        let server::Listeners {
            grpc,
            grpc_addr,
            metrics: metrics_listener,
            metrics_addr,
        } = server::Listeners::bind(config.listen, config.metrics_listen).await?;
        let address = config
            .address
            .clone()
            .unwrap_or_else(|| detect_address(None));
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address.clone()
        };

        let metrics = Metrics::new()?;
        let finished = FinishedRuns::new(config.data_dir.join("finished"));
        let replicas = ReplicaTable::with_finished(finished.clone());
        register_replica_metrics(&metrics, replicas.clone())?;
        let reporter = StatusReporter::default();
        let has_accelerators = !valued.inventory.accelerators.is_empty();
        let (lease_state, lease) = fence::lease_channel();
        let replica_host = Arc::new(ReplicaHost {
            node: config.node_name.clone(),
            store: self.store.clone(),
            root,
            cgroups: cgroups.clone(),
            shim,
            reporter: reporter.clone(),
            metrics: metrics.clone(),
            replicas: replicas.clone(),
            finished,
            opts: opts.clone(),
            base_env: ReplicaHost::inherited_env(),
            has_accelerators,
            device_nodes,
            lease,
            namespace_users,
        });

        let rest_cancel = CancellationToken::new();
        let runtime_cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let log_streams = TaskTracker::new();
        let logs = LogServer::new(
            Arc::new(replicas),
            config.node_name.clone(),
            log_streams.clone(),
            rest_cancel.clone(),
            config.max_log_streams,
        );
        let tls = match &config.tls {
            Some(files) => {
                let acceptor = ReloadingAcceptor::load(files.clone())?;
                // A renewed node certificate is served without a restart.
                tasks.spawn(acceptor.clone().watch(TLS_RELOAD, rest_cancel.clone()));
                Some(acceptor)
            }
            None => None,
        };
        let c = rest_cancel.clone();
        tasks.spawn(async move {
            if let Err(e) = server::serve(grpc, logs, tls, c).await {
                warn!(error = %e, "gRPC server failed");
            }
        });
        if let Some(l) = metrics_listener {
            let (m, c) = (metrics.clone(), rest_cancel.clone());
            tasks.spawn(async move {
                if let Err(e) = metrics::serve(l, m, c).await {
                    warn!(error = %e, "metrics server failed");
                }
            });
        }
        tasks.spawn(
            reporter
                .clone()
                .run(self.store.clone(), rest_cancel.clone()),
        );
        let rediscover = match &config.inventory {
            Some(_) => None,
            None => {
                let (d, cat, reserve) = (config.discovery.clone(), catalog.clone(), config.reserve);
                let f: crate::registration::Rediscover = Arc::new(move || {
                    discovery::discover(&d)
                        .ok()
                        .map(|inv| capacity::value(inv, &cat, reserve))
                });
                Some((f, config.rediscover_interval))
            }
        };
        let registration = Registration {
            store: self.store.clone(),
            identity: Identity {
                name: config.node_name.clone(),
                labels: config.labels.clone(),
                address,
                agent_endpoint: format!(
                    "{}://{host}:{}",
                    if config.tls.is_some() {
                        "https"
                    } else {
                        "http"
                    },
                    grpc_addr.port()
                ),
                agent_version: VERSION.to_string(),
                limits: cgroups
                    .availability()
                    .map(str::to_string)
                    .map_err(str::to_string),
            },
            valued,
            lease_ttl: config.lease_ttl,
            metrics,
            rediscover,
            revoke_on_exit: opts.on_shutdown == OnShutdown::Stop,
            lease_state,
        };
        tasks.spawn(registration.run(rest_cancel.clone()));
        let runtime = tokio::spawn(Runtime::new(replica_host).run(runtime_cancel.clone()));
        Ok(RunningAgent {
            grpc_addr,
            metrics_addr,
            runtime_cancel,
            runtime,
            rest_cancel,
            tasks,
            log_streams,
        })
    }
}

impl RunningAgent {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops supervising (leaving or stopping replicas as configured), flushes statuses,
    /// stops the servers and the registration, and waits for every task.
    pub async fn shutdown(mut self) {
        self.runtime_cancel.cancel();
        let _ = self.runtime.await;
        self.rest_cancel.cancel();
        self.log_streams.close();
        while self.tasks.join_next().await.is_some() {}
        self.log_streams.wait().await;
        info!("agent stopped");
    }
}

/// The first directory from `/` down to `dir` that users other than its owner cannot search,
/// when this agent runs replicas as other users (it is root).
pub fn closed_to_others(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let dir = dir.canonicalize().ok()?;
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    ancestors
        .into_iter()
        .find(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_path_buf)
}

/// The shim: this executable when it is uni-agent, else a `uni-agent` beside it, else none.
pub fn find_shim() -> ShimMode {
    let Ok(exe) = std::env::current_exe() else {
        return ShimMode::InProcess;
    };
    let is_agent = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "uni-agent")
    };
    if is_agent(&exe) {
        return ShimMode::Exec(exe);
    }
    let mut dirs = Vec::new();
    if let Some(d) = exe.parent() {
        dirs.push(d.to_path_buf());
        if let Some(up) = d.parent() {
            // Test binaries live in target/<profile>/deps.
            dirs.push(up.to_path_buf());
        }
    }
    dirs.into_iter()
        .map(|d| d.join("uni-agent"))
        .find(|p| p.is_file())
        .map_or(ShimMode::InProcess, ShimMode::Exec)
}

/// The local address used to reach `peer` (the scheduler or etcd), found without sending anything; else the
/// address of the default route; else loopback.
pub fn detect_address(peer: Option<&str>) -> String {
    let probe = |target: &str| -> Option<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(target).ok()?;
        Some(socket.local_addr().ok()?.ip())
    };
    peer.and_then(&probe)
        .or_else(|| probe("192.0.2.1:9"))
        .filter(|ip| !ip.is_unspecified())
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
}
