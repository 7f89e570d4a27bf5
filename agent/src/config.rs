//! Command line and config file: defaults < config file < environment < flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use uni_core::quantity;

use crate::agent::AgentConfig;
use crate::capacity::Reserve;
use crate::discovery::NvmlSource;
use crate::error::{Error, Result};
use crate::runtime::{OnShutdown, RunAs};
use crate::simulate::SimulateConfig;

#[derive(Debug, Parser)]
#[command(name = "uni-agent", version, about = "The Universal node agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// YAML file with any of the settings below (kebab-case keys).
    #[arg(long, env = "UNIVERSAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// etcd endpoints, HOST:PORT[,...].
    #[arg(long, env = "UNIVERSAL_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Option<Vec<String>>,
    /// Reach the store through this scheduler API (`https://host:port`) with a node
    /// certificate, instead of etcd: the node's credential reaches only its own keys.
    #[arg(long, env = "UNIVERSAL_SERVER")]
    pub server: Option<String>,
    /// Cluster CA certificate (default DATA_DIR/pki/ca.crt).
    #[arg(long, env = "UNIVERSAL_CA")]
    pub ca: Option<PathBuf>,
    /// Node certificate (default DATA_DIR/pki/node.crt; got at join, renewed in place).
    #[arg(long, env = "UNIVERSAL_NODE_CERT")]
    pub cert: Option<PathBuf>,
    /// Key of --cert (default DATA_DIR/pki/node.key).
    #[arg(long, env = "UNIVERSAL_NODE_KEY")]
    pub key: Option<PathBuf>,
    /// Bootstrap token (file) to join with when there is no node certificate yet.
    #[arg(long, env = "UNIVERSAL_BOOTSTRAP_TOKEN_FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// CA that signed etcd's certificate (`https://` endpoints).
    #[arg(long, env = "UNIVERSAL_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long, env = "UNIVERSAL_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// Private key of --etcd-cert.
    #[arg(long, env = "UNIVERSAL_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// Node name (default: the host name).
    #[arg(long, env = "UNIVERSAL_NODE_NAME")]
    pub node_name: Option<String>,
    /// Node labels, k=v[,...].
    #[arg(long, env = "UNIVERSAL_AGENT_LABELS", value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// gRPC listener serving logs (default 0.0.0.0:7072; port 0 picks one, printed).
    #[arg(long, env = "UNIVERSAL_AGENT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Prometheus `/metrics` listener (default 0.0.0.0:7073).
    #[arg(long, env = "UNIVERSAL_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address others reach this node at (default: the one used to reach etcd).
    #[arg(long, env = "UNIVERSAL_AGENT_ADDRESS")]
    pub address: Option<String>,
    /// Replica state, logs and working directories (default /var/lib/universal/agent).
    #[arg(long, env = "UNIVERSAL_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node lease TTL in seconds (default 10; 60 when simulating).
    #[arg(long, env = "UNIVERSAL_AGENT_LEASE_TTL_SECONDS")]
    pub lease_ttl_seconds: Option<u64>,
    /// Hardware catalog replacing the built-in one.
    #[arg(long, env = "UNIVERSAL_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Compute kept back for the system, e.g. 500m (default 100m).
    #[arg(long, env = "UNIVERSAL_AGENT_RESERVE_COMPUTE")]
    pub reserve_compute: Option<String>,
    /// Memory kept back for the system, e.g. 1Gi (default 256Mi).
    #[arg(long, env = "UNIVERSAL_AGENT_RESERVE_MEMORY")]
    pub reserve_memory: Option<String>,
    /// Run replicas without cgroups.
    #[arg(long, env = "UNIVERSAL_AGENT_NO_CGROUPS")]
    pub no_cgroups: bool,
    /// Directory under each cgroup hierarchy for replicas' cgroups (default `universal`).
    #[arg(long, env = "UNIVERSAL_AGENT_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,
    /// NVML library to load instead of libnvidia-ml.so.1.
    #[arg(long, env = "UNIVERSAL_AGENT_NVML_LIBRARY")]
    pub nvml_library: Option<PathBuf>,
    /// Do not look for accelerators.
    #[arg(long, env = "UNIVERSAL_AGENT_NO_NVML")]
    pub no_nvml: bool,
    /// Log file size at which it is rotated, e.g. 10Mi.
    #[arg(long, env = "UNIVERSAL_AGENT_LOG_MAX_SIZE")]
    pub log_max_size: Option<String>,
    /// Rotated log files kept per run (default 4).
    #[arg(long, env = "UNIVERSAL_AGENT_LOG_MAX_FILES")]
    pub log_max_files: Option<u32>,
    /// Grace period of inference replicas between SIGTERM and SIGKILL (default 30).
    #[arg(long, env = "UNIVERSAL_AGENT_GRACE_PERIOD_SECONDS")]
    pub grace_period_seconds: Option<u64>,
    /// First restart delay of a crashing inference replica, doubled per crash (default 1).
    #[arg(long, env = "UNIVERSAL_AGENT_BACKOFF_SECONDS")]
    pub backoff_seconds: Option<f64>,
    /// Stop training replicas once the node's lease has been lost this long, so no rank runs
    /// twice after the scheduler moved it (default 10; 0: never).
    #[arg(long, env = "UNIVERSAL_AGENT_FENCE_AFTER_SECONDS")]
    pub fence_after_seconds: Option<u64>,
    /// Fence inference replicas too (they start again once the lease is held).
    #[arg(long, env = "UNIVERSAL_AGENT_FENCE_INFERENCE")]
    pub fence_inference: bool,
    /// Longest grace period a fenced replica gets between SIGTERM and SIGKILL (default 10).
    #[arg(long, env = "UNIVERSAL_AGENT_FENCE_GRACE_SECONDS")]
    pub fence_grace_seconds: Option<u64>,
    /// Log streams served at once (default 64); more are refused until one ends.
    #[arg(long, env = "UNIVERSAL_AGENT_MAX_LOG_STREAMS")]
    pub max_log_streams: Option<usize>,
    /// Stop replicas when the agent stops (default: leave them running for the next agent).
    #[arg(long, env = "UNIVERSAL_AGENT_STOP_WORKLOADS_ON_EXIT")]
    pub stop_workloads_on_exit: bool,
    /// User id replicas run as when their template names none (default 65534, nobody; not 0).
    #[arg(long, env = "UNIVERSAL_AGENT_RUN_AS_USER")]
    pub run_as_user: Option<u32>,
    /// Group id replicas run as when their template names none (default 65534; not 0).
    #[arg(long, env = "UNIVERSAL_AGENT_RUN_AS_GROUP")]
    pub run_as_group: Option<u32>,
    /// User ids given to namespaces, one each, for replicas whose template names no user
    /// (default 200000-299999); `off` runs them all as --run-as-user.
    #[arg(long, env = "UNIVERSAL_AGENT_NAMESPACE_UIDS")]
    pub namespace_uids: Option<String>,
    /// Run this many simulated nodes instead of managing this machine.
    #[arg(long, env = "UNIVERSAL_AGENT_SIMULATE")]
    pub simulate: Option<usize>,
    /// Hardware of simulated nodes: an openb-style CSV node list or a YAML profile.
    #[arg(long, env = "UNIVERSAL_AGENT_PROFILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Internal: supervises one replica process (started by the agent).
    #[command(hide = true)]
    Shim { spec: PathBuf },
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub etcd_endpoints: Option<Vec<String>>,
    pub server: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub bootstrap_token_file: Option<PathBuf>,
    pub etcd_ca: Option<PathBuf>,
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
    pub node_name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub address: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub lease_ttl_seconds: Option<u64>,
    pub catalog: Option<PathBuf>,
    pub reserve_compute: Option<String>,
    pub reserve_memory: Option<String>,
    pub no_cgroups: Option<bool>,
    pub cgroup_parent: Option<String>,
    pub nvml_library: Option<PathBuf>,
    pub no_nvml: Option<bool>,
    pub log_max_size: Option<String>,
    pub log_max_files: Option<u32>,
    pub grace_period_seconds: Option<u64>,
    pub backoff_seconds: Option<f64>,
    pub fence_after_seconds: Option<u64>,
    pub fence_inference: Option<bool>,
    pub fence_grace_seconds: Option<u64>,
    pub max_log_streams: Option<usize>,
    pub stop_workloads_on_exit: Option<bool>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub namespace_uids: Option<String>,
    pub simulate: Option<usize>,
    pub profile: Option<PathBuf>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::at("reading config", path))?;
        serde_yaml::from_str(&text)
            .map_err(|e| Error::Config(format!("parsing {}: {e}", path.display())))
    }
}

/// How the agent reaches the API when it goes through the scheduler.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub server: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub bootstrap_token_file: Option<PathBuf>,
}

impl Gateway {
    /// The log service's TLS: the node certificate, and the cluster CA for its callers.
    pub fn log_tls(&self) -> uni_core::tls::server::TlsFiles {
        uni_core::tls::server::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: Some(self.ca.clone()),
        }
    }
}

/// Everything `main` needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub etcd_endpoints: Vec<String>,
    pub etcd: uni_core::store::EtcdOptions,
    /// Through the scheduler's gateway instead of etcd.
    pub gateway: Option<Gateway>,
    pub agent: AgentConfig,
    pub simulate: Option<SimulateConfig>,
}

fn labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(Error::Config(format!("labels: {s:?} is not key=value"))),
        })
        .collect()
}

/// `MIN-MAX` (ids above 0), or `off`.
fn namespace_uids(text: &str) -> Result<Option<std::ops::RangeInclusive<u32>>> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let bad = |why: &str| Error::Config(format!("namespace-uids: {text:?} {why}"));
    let (min, max) = text
        .split_once('-')
        .ok_or_else(|| bad("is not MIN-MAX or off"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| bad("is not MIN-MAX or off"))
    };
    let (min, max) = (parse(min)?, parse(max)?);
    if min == 0 {
        return Err(bad("includes 0 (root)"));
    }
    if min > max {
        return Err(bad("is empty (MIN above MAX)"));
    }
    Ok(Some(min..=max))
}

/// The default identity of replicas: unprivileged. Root is for templates that ask for it.
fn run_as(user: Option<u32>, group: Option<u32>) -> Result<RunAs> {
    let run_as = RunAs {
        uid: user.unwrap_or(RunAs::NOBODY.uid),
        gid: group.unwrap_or(RunAs::NOBODY.gid),
    };
    for (key, id) in [("run-as-user", run_as.uid), ("run-as-group", run_as.gid)] {
        if id == 0 {
            return Err(Error::Config(format!(
                "{key}: the default identity of replicas may not be root (0); a workload that \
                 needs root says so in its template (run_as_user: 0)"
            )));
        }
        if id == u32::MAX {
            return Err(Error::Config(format!(
                "{key}: 4294967295 is not an id (to the kernel it means \"unchanged\")"
            )));
        }
    }
    Ok(run_as)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    pub fn resolve(cli: Cli) -> Result<Self> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let etcd_given = cli.etcd_endpoints.is_some() || file.etcd_endpoints.is_some();
        let etcd_endpoints = cli
            .etcd_endpoints
            .or(file.etcd_endpoints)
            .unwrap_or_else(|| vec!["127.0.0.1:2379".to_string()]);
        let server = cli.server.or(file.server);
        if server.is_some() && etcd_given {
            return Err(Error::Config(
                "give --server (through the scheduler) or --etcd-endpoints, not both".into(),
            ));
        }
        let node_name = cli.node_name.or(file.node_name).unwrap_or_else(hostname);
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/universal/agent"));
        let mut agent = AgentConfig::new(node_name, data_dir);
        agent.labels = match cli.labels {
            Some(l) => labels(&l)?,
            None => file.labels.unwrap_or_default(),
        };
        agent.listen = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7072)));
        agent.metrics_listen = Some(
            cli.metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7073))),
        );
        agent.address = cli.address.or(file.address);
        let simulating = cli.simulate.or(file.simulate);
        let ttl = cli
            .lease_ttl_seconds
            .or(file.lease_ttl_seconds)
            .unwrap_or(if simulating.is_some() { 60 } else { 10 });
        agent.lease_ttl = Duration::from_secs(ttl.max(1));
        agent.catalog = cli.catalog.or(file.catalog);
        let compute = cli.reserve_compute.or(file.reserve_compute);
        let memory = cli.reserve_memory.or(file.reserve_memory);
        agent.reserve = Reserve {
            compute_milli: quantity::parse_milli(compute.as_deref().unwrap_or("100m"))
                .map_err(|e| Error::Config(format!("reserve-compute: {e}")))?,
            memory_bytes: quantity::parse_bytes(memory.as_deref().unwrap_or("256Mi"))
                .map_err(|e| Error::Config(format!("reserve-memory: {e}")))?,
        };
        agent.cgroups.enabled = !(cli.no_cgroups || file.no_cgroups.unwrap_or(false));
        if let Some(p) = cli.cgroup_parent.or(file.cgroup_parent) {
            agent.cgroups.parent = p;
        }
        agent.discovery.nvml = if cli.no_nvml || file.no_nvml.unwrap_or(false) {
            NvmlSource::Off
        } else {
            cli.nvml_library
                .or(file.nvml_library)
                .map_or(NvmlSource::Auto, NvmlSource::Library)
        };
        if let Some(size) = cli.log_max_size.or(file.log_max_size) {
            agent.runtime.log_max_bytes = quantity::parse_bytes(&size)
                .map_err(|e| Error::Config(format!("log-max-size: {e}")))?;
        }
        if let Some(n) = cli.log_max_files.or(file.log_max_files) {
            agent.runtime.log_max_files = n;
        }
        if let Some(g) = cli.grace_period_seconds.or(file.grace_period_seconds) {
            agent.runtime.default_grace = Duration::from_secs(g);
        }
        if let Some(b) = cli.backoff_seconds.or(file.backoff_seconds) {
            if !(b.is_finite() && b > 0.0) {
                return Err(Error::Config("backoff-seconds: must be positive".into()));
            }
            agent.runtime.backoff_base = Duration::from_secs_f64(b);
        }
        if let Some(s) = cli.fence_after_seconds.or(file.fence_after_seconds) {
            agent.runtime.fence_after = (s > 0).then(|| Duration::from_secs(s));
        }
        if let Some(s) = cli.fence_grace_seconds.or(file.fence_grace_seconds) {
            agent.runtime.fence_grace = Duration::from_secs(s);
        }
        if let Some(n) = cli.max_log_streams.or(file.max_log_streams) {
            if n == 0 {
                return Err(Error::Config("max-log-streams: must be at least 1".into()));
            }
            agent.max_log_streams = n;
        }
        agent.runtime.fence_inference =
            cli.fence_inference || file.fence_inference.unwrap_or(false);
        agent.runtime.on_shutdown =
            if cli.stop_workloads_on_exit || file.stop_workloads_on_exit.unwrap_or(false) {
                OnShutdown::Stop
            } else {
                OnShutdown::Leave
            };
        agent.runtime.run_as = run_as(
            cli.run_as_user.or(file.run_as_user),
            cli.run_as_group.or(file.run_as_group),
        )?;
        if let Some(range) = cli.namespace_uids.or(file.namespace_uids) {
            agent.runtime.namespace_users = namespace_uids(&range)?;
        }
        let simulate = match simulating {
            Some(nodes) => {
                let profile = cli
                    .profile
                    .or(file.profile)
                    .ok_or_else(|| Error::Config("--simulate needs --profile FILE".into()))?;
                Some(SimulateConfig {
                    nodes,
                    profile,
                    lease_ttl: agent.lease_ttl,
                    labels: agent.labels.clone(),
                    catalog: agent.catalog.clone(),
                })
            }
            None => None,
        };
        let etcd = uni_core::store::EtcdOptions::from_files(
            cli.etcd_ca.or(file.etcd_ca).as_deref(),
            cli.etcd_cert.or(file.etcd_cert).as_deref(),
            cli.etcd_key.or(file.etcd_key).as_deref(),
        )
        .map_err(|e| Error::Config(format!("etcd TLS: {e}")))?;
        let pki = agent.data_dir.join("pki");
        let gateway = match server {
            Some(server) if !server.starts_with("https://") => {
                return Err(Error::Config(format!(
                    "server {server:?}: the agent reaches the API over https:// only"
                )))
            }
            Some(server) => Some(Gateway {
                server,
                ca: cli.ca.or(file.ca).unwrap_or_else(|| pki.join("ca.crt")),
                cert: cli
                    .cert
                    .or(file.cert)
                    .unwrap_or_else(|| pki.join("node.crt")),
                key: cli.key.or(file.key).unwrap_or_else(|| pki.join("node.key")),
                bootstrap_token_file: cli.bootstrap_token_file.or(file.bootstrap_token_file),
            }),
            None => None,
        };
        Ok(Self {
            etcd_endpoints,
            etcd,
            gateway,
            agent,
            simulate,
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
        assert_eq!(file.listen, Some("0.0.0.0:7072".parse().unwrap()));
        let cli = Cli::parse_from([
            "uni-agent",
            "--config",
            path.to_str().unwrap(),
            "--node-name",
            "gpu-7",
            "--labels",
            "zone=b,rack=r9",
            "--reserve-memory",
            "1Gi",
        ]);
        let c = Config::resolve(cli).unwrap();
        assert_eq!(c.agent.node_name, "gpu-7");
        assert_eq!(c.agent.labels.get("zone").map(String::as_str), Some("b"));
        assert_eq!(c.agent.reserve.memory_bytes, 1 << 30);
        assert_eq!(c.etcd_endpoints, file.etcd_endpoints.unwrap());
        assert!(c.simulate.is_none());
        // The daemon leaves replicas running across its own restarts.
        assert_eq!(c.agent.runtime.on_shutdown, OnShutdown::Leave);
        // The file's replica identity, the group overridden by the flag.
        assert_eq!(
            (file.run_as_user, file.run_as_group),
            (Some(65534), Some(65534))
        );
        let cli = Cli::parse_from([
            "uni-agent",
            "--config",
            path.to_str().unwrap(),
            "--run-as-group",
            "1000",
        ]);
        let c = Config::resolve(cli).unwrap();
        assert_eq!(
            c.agent.runtime.run_as,
            RunAs {
                uid: 65534,
                gid: 1000
            }
        );
    }

    #[test]
    fn replicas_default_to_nobody_and_never_to_root() {
        let c = Config::resolve(Cli::parse_from(["uni-agent"])).unwrap();
        assert_eq!(c.agent.runtime.run_as, RunAs::NOBODY);
        assert_eq!(
            c.agent.runtime.namespace_users,
            Some(crate::runtime::namespace_users::DEFAULT_RANGE)
        );
        let off = Config::resolve(Cli::parse_from(["uni-agent", "--namespace-uids", "off"]));
        assert_eq!(off.unwrap().agent.runtime.namespace_users, None);
        for bad in ["0-10", "10-5", "many"] {
            let err = Config::resolve(Cli::parse_from(["uni-agent", "--namespace-uids", bad]))
                .unwrap_err();
            assert!(err.to_string().contains("namespace-uids"), "{err}");
        }
        for flag in ["--run-as-user", "--run-as-group"] {
            let err = Config::resolve(Cli::parse_from(["uni-agent", flag, "0"])).unwrap_err();
            assert!(err.to_string().contains("may not be root"), "{err}");
        }
    }

    #[test]
    fn simulate_needs_a_profile_and_bad_labels_are_named() {
        let err = Config::resolve(Cli::parse_from(["uni-agent", "--simulate", "5"])).unwrap_err();
        assert!(err.to_string().contains("--profile"), "{err}");
        let err =
            Config::resolve(Cli::parse_from(["uni-agent", "--labels", "novalue"])).unwrap_err();
        assert!(err.to_string().contains("novalue"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "lease-ttl: 3\n").unwrap();
        let err = FileConfig::load(&p).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `lease-ttl`"),
            "{err}"
        );
    }
}
