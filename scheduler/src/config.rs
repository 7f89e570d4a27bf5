//! Configuration: defaults < config file < environment < flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "uni-scheduler", version, about = "The Universal control plane")]
pub struct Cli {
    /// YAML file with any of the settings below (kebab-case keys).
    #[arg(long, env = "UNIVERSAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// etcd endpoints, HOST:PORT[,...].
    #[arg(long, env = "UNIVERSAL_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Option<Vec<String>>,
    /// Address of the gRPC API (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "UNIVERSAL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "UNIVERSAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Name of this replica in leader election (default: hostname and process id).
    #[arg(long, env = "UNIVERSAL_IDENTITY")]
    pub identity: Option<String>,
    /// Leader lease TTL in seconds: the bound on failover time.
    #[arg(long, env = "UNIVERSAL_LEASE_TTL_SECONDS")]
    pub lease_ttl_seconds: Option<u64>,
    /// Seconds a NotReady node keeps its allocations before they are placed elsewhere.
    #[arg(long, env = "UNIVERSAL_NODE_GRACE_SECONDS")]
    pub node_grace_seconds: Option<u64>,
    /// Hardware catalog replacing the built-in one.
    #[arg(long, env = "UNIVERSAL_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Commit transactions in flight at once.
    #[arg(long, env = "UNIVERSAL_MAX_COMMITS_IN_FLIGHT")]
    pub max_commits_in_flight: Option<usize>,
    /// Dev mode: the whole control plane and an agent for this machine in one process, on an
    /// embedded store; no etcd. Serves on loopback only, without authentication.
    #[arg(long, env = "UNIVERSAL_DEV")]
    pub dev: bool,
    /// Where dev mode keeps its data (default: ~/.local/share/universal/dev).
    #[arg(long, env = "UNIVERSAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub etcd_endpoints: Option<Vec<String>>,
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub identity: Option<String>,
    pub lease_ttl_seconds: Option<u64>,
    pub node_grace_seconds: Option<u64>,
    pub catalog: Option<PathBuf>,
    pub max_commits_in_flight: Option<usize>,
    pub data_dir: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        serde_yaml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub etcd_endpoints: Vec<String>,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub identity: String,
    pub lease_ttl: Duration,
    pub node_grace: Duration,
    pub catalog: Option<PathBuf>,
    pub max_commits_in_flight: usize,
    pub dev: bool,
    pub data_dir: PathBuf,
}

impl Config {
    pub fn resolve(cli: Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let identity = cli.identity.or(file.identity).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        // Dev mode serves without authentication, so only on loopback unless told otherwise.
        let host = if cli.dev {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        let data_dir = cli.data_dir.or(file.data_dir).unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
            PathBuf::from(home).join(".local/share/universal/dev")
        });
        Ok(Self {
            dev: cli.dev,
            data_dir,
            etcd_endpoints: cli
                .etcd_endpoints
                .or(file.etcd_endpoints)
                .unwrap_or_else(|| vec!["127.0.0.1:2379".to_string()]),
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from((host, 7070))),
            metrics_listen: cli
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| SocketAddr::from((host, 7071))),
            identity,
            lease_ttl: Duration::from_secs(
                cli.lease_ttl_seconds
                    .or(file.lease_ttl_seconds)
                    .unwrap_or(5),
            ),
            node_grace: Duration::from_secs(
                cli.node_grace_seconds
                    .or(file.node_grace_seconds)
                    .unwrap_or(30),
            ),
            catalog: cli.catalog.or(file.catalog),
            max_commits_in_flight: cli
                .max_commits_in_flight
                .or(file.max_commits_in_flight)
                .unwrap_or(8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_flags_win_over_the_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.lease_ttl_seconds, Some(5));
        let cli = Cli::parse_from([
            "uni-scheduler",
            "--config",
            path.to_str().unwrap(),
            "--lease-ttl-seconds",
            "9",
        ]);
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.lease_ttl, Duration::from_secs(9));
        assert_eq!(c.etcd_endpoints, file.etcd_endpoints.unwrap());
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "lease-ttl: 3\n").unwrap();
        let err = FileConfig::load(&p).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `lease-ttl`"),
            "{err:#}"
        );
    }
}
