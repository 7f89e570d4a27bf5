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
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Address of the inference gateway, `/NAMESPACE/SERVICE/...` (default port 7080).
    #[arg(long, env = "UNIVERSAL_GATEWAY_LISTEN")]
    pub gateway_listen: Option<SocketAddr>,
    /// The gateway's URL as clients reach it (a load balancer or DNS name in front of the
    /// replicas), shown as each service's endpoint. Default: this replica's address.
    #[arg(long, env = "UNIVERSAL_GATEWAY_URL")]
    pub gateway_url: Option<String>,
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
    /// The leader compacts the store's history this often, keeping one interval of it
    /// (default 300; 0 leaves compaction to etcd's own --auto-compaction settings).
    #[arg(long, env = "UNIVERSAL_COMPACTION_INTERVAL_SECONDS")]
    pub compaction_interval_seconds: Option<u64>,
    /// Seconds an event is kept after its last occurrence (default 3600).
    #[arg(long, env = "UNIVERSAL_EVENT_TTL_SECONDS")]
    pub event_ttl_seconds: Option<u64>,
    /// Seconds a finished training job is kept before it is deleted, unless the job sets
    /// ttl_seconds_after_finished (default 604800, 7 days; 0 keeps them for ever).
    #[arg(long, env = "UNIVERSAL_FINISHED_TTL_SECONDS")]
    pub finished_ttl_seconds: Option<u64>,
    /// Seconds a workload may wait before capacity is held for it against later,
    /// non-preemptible work of its queue (default 600).
    #[arg(long, env = "UNIVERSAL_STARVATION_SECONDS")]
    pub starvation_seconds: Option<u64>,
    /// Seconds room must stay free, with nothing waiting, before an elastic training job
    /// grows into it (default 60).
    #[arg(long, env = "UNIVERSAL_ELASTIC_WINDOW_SECONDS")]
    pub elastic_window_seconds: Option<u64>,
    /// Most watches this replica serves at once (default 10000); more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "UNIVERSAL_MAX_WATCHES")]
    pub max_watches: Option<usize>,
    /// Dev mode: the whole control plane and an agent for this machine in one process, on an
    /// embedded store; no etcd. Serves on loopback only, with TLS and an admin token it
    /// generates under its data directory, and writes the `unictl` context "dev".
    #[arg(long, env = "UNIVERSAL_DEV")]
    pub dev: bool,
    /// Where dev mode keeps its data (default: ~/.local/share/universal/dev).
    #[arg(long, env = "UNIVERSAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve TLS with this certificate (PEM; reloaded when the file changes).
    #[arg(long, env = "UNIVERSAL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert.
    #[arg(long, env = "UNIVERSAL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Accept client certificates signed by this CA: the common name is the user, each
    /// organization a group.
    #[arg(long, env = "UNIVERSAL_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Static bearer tokens (YAML list of token, user, groups; reloaded when it changes).
    #[arg(long, env = "UNIVERSAL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Accept JWTs from this OIDC issuer (its `iss`).
    #[arg(long, env = "UNIVERSAL_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience (client id) OIDC tokens must carry.
    #[arg(long, env = "UNIVERSAL_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The issuer's signing keys: a JWKS file path or an http(s) URL.
    #[arg(long, env = "UNIVERSAL_OIDC_JWKS")]
    pub oidc_jwks: Option<String>,
    /// Claim holding the user name (default `sub`).
    #[arg(long, env = "UNIVERSAL_OIDC_USERNAME_CLAIM")]
    pub oidc_username_claim: Option<String>,
    /// Claim holding the groups (default `groups`).
    #[arg(long, env = "UNIVERSAL_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// Append a JSON line per mutating call (who, what, when, result) to this file.
    #[arg(long, env = "UNIVERSAL_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Private key of --client-ca: with it, agents join with a bootstrap token and renew
    /// their node certificates through the API.
    #[arg(long, env = "UNIVERSAL_CA_KEY")]
    pub ca_key: Option<PathBuf>,
    /// CA that signed etcd's server certificate; `https://` endpoints need it.
    #[arg(long, env = "UNIVERSAL_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long, env = "UNIVERSAL_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// Private key of --etcd-cert.
    #[arg(long, env = "UNIVERSAL_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// Serve plaintext without authentication: every caller is an administrator. Only on
    /// loopback addresses, for tests and benchmarks on one machine.
    #[arg(long, env = "UNIVERSAL_INSECURE")]
    pub insecure: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a cluster CA, the API's certificate, an admin token and a config file using
    /// them in DIR, and a `unictl` context that uses them.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP address of the API in its certificate (repeatable);
        /// localhost and 127.0.0.1 are always included.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// URL of the API written into the context.
        #[arg(long, default_value = "https://127.0.0.1:7070")]
        server: String,
        /// Name of the `unictl` context to write and make current.
        #[arg(long, default_value = "universal")]
        context: String,
        /// Write no `unictl` context.
        #[arg(long)]
        no_context: bool,
    },
    /// Add a bootstrap token to DIR (written by `init`) that lets agents join for a while,
    /// and write it to DIR/bootstrap.token.
    BootstrapToken {
        #[arg(long)]
        dir: PathBuf,
        /// Hours the token lets agents join.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
        ttl_hours: u64,
    },
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub etcd_endpoints: Option<Vec<String>>,
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub gateway_listen: Option<SocketAddr>,
    pub gateway_url: Option<String>,
    pub identity: Option<String>,
    pub lease_ttl_seconds: Option<u64>,
    pub node_grace_seconds: Option<u64>,
    pub catalog: Option<PathBuf>,
    pub max_commits_in_flight: Option<usize>,
    pub compaction_interval_seconds: Option<u64>,
    pub event_ttl_seconds: Option<u64>,
    pub finished_ttl_seconds: Option<u64>,
    pub starvation_seconds: Option<u64>,
    pub elastic_window_seconds: Option<u64>,
    pub max_watches: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_jwks: Option<String>,
    pub oidc_username_claim: Option<String>,
    pub oidc_groups_claim: Option<String>,
    pub audit_log: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub etcd_ca: Option<PathBuf>,
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
    pub insecure: Option<bool>,
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
    pub gateway_listen: SocketAddr,
    /// Empty: derived from the bound gateway address.
    pub gateway_url: String,
    pub identity: String,
    pub lease_ttl: Duration,
    pub node_grace: Duration,
    pub catalog: Option<PathBuf>,
    pub max_commits_in_flight: usize,
    /// Zero: the leader does not compact.
    pub compaction_interval: Duration,
    pub event_ttl: Duration,
    /// `None`: finished jobs are kept for ever unless they say otherwise.
    pub finished_ttl: Option<Duration>,
    /// Waiting this long makes a workload starving (capacity is held for it).
    pub starvation_after: Duration,
    /// Room stays free this long before an elastic job grows into it.
    pub elastic_window: Duration,
    pub max_watches: usize,
    pub dev: bool,
    pub data_dir: PathBuf,
    pub security: Security,
}

/// How the API is secured and how etcd is reached.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub insecure: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub oidc: Option<OidcSettings>,
    pub audit_log: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub etcd_ca: Option<PathBuf>,
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks: String,
    pub username_claim: String,
    pub groups_claim: String,
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
        // Dev mode is for this machine: its admin token sits in its data directory, and it
        // refuses any listener but loopback.
        let host = if cli.dev {
            [127, 0, 0, 1]
        } else {
            [0, 0, 0, 0]
        };
        let data_dir = cli.data_dir.or(file.data_dir).unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
            PathBuf::from(home).join(".local/share/universal/dev")
        });
        let oidc = match (
            cli.oidc_issuer.or(file.oidc_issuer),
            cli.oidc_audience.or(file.oidc_audience),
            cli.oidc_jwks.or(file.oidc_jwks),
        ) {
            (None, None, None) => None,
            (Some(issuer), Some(audience), Some(jwks)) => Some(OidcSettings {
                issuer,
                audience,
                jwks,
                username_claim: cli
                    .oidc_username_claim
                    .or(file.oidc_username_claim)
                    .unwrap_or_else(|| "sub".into()),
                groups_claim: cli
                    .oidc_groups_claim
                    .or(file.oidc_groups_claim)
                    .unwrap_or_else(|| "groups".into()),
            }),
            _ => anyhow::bail!("oidc-issuer, oidc-audience and oidc-jwks go together"),
        };
        let security = Security {
            insecure: cli.insecure || file.insecure.unwrap_or(false),
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            client_ca: cli.client_ca.or(file.client_ca),
            token_file: cli.token_file.or(file.token_file),
            oidc,
            audit_log: cli.audit_log.or(file.audit_log),
            ca_key: cli.ca_key.or(file.ca_key),
            etcd_ca: cli.etcd_ca.or(file.etcd_ca),
            etcd_cert: cli.etcd_cert.or(file.etcd_cert),
            etcd_key: cli.etcd_key.or(file.etcd_key),
        };
        Ok(Self {
            dev: cli.dev,
            data_dir,
            security,
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
            gateway_listen: cli
                .gateway_listen
                .or(file.gateway_listen)
                .unwrap_or_else(|| SocketAddr::from((host, 7080))),
            gateway_url: gateway_url(cli.gateway_url.or(file.gateway_url))?,
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
            compaction_interval: Duration::from_secs(
                cli.compaction_interval_seconds
                    .or(file.compaction_interval_seconds)
                    .unwrap_or(300),
            ),
            event_ttl: Duration::from_secs(
                cli.event_ttl_seconds
                    .or(file.event_ttl_seconds)
                    .unwrap_or(3600)
                    .max(1),
            ),
            finished_ttl: match cli
                .finished_ttl_seconds
                .or(file.finished_ttl_seconds)
                .unwrap_or(7 * 86_400)
            {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            starvation_after: Duration::from_secs(
                cli.starvation_seconds
                    .or(file.starvation_seconds)
                    .unwrap_or(600),
            ),
            elastic_window: Duration::from_secs(
                cli.elastic_window_seconds
                    .or(file.elastic_window_seconds)
                    .unwrap_or(60),
            ),
            max_watches: cli
                .max_watches
                .or(file.max_watches)
                .unwrap_or(10_000)
                .max(1),
        })
    }
}

/// An advertised gateway URL: `http(s)://HOST[:PORT][/PATH]`, kept without a trailing '/'.
fn gateway_url(url: Option<String>) -> anyhow::Result<String> {
    let Some(url) = url else {
        return Ok(String::new());
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => anyhow::bail!("gateway-url: {url:?} is not an http:// or https:// URL with a host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_need_a_scheme_and_a_host() {
        assert_eq!(
            gateway_url(Some("https://llm.example.com/".into())).unwrap(),
            "https://llm.example.com"
        );
        assert_eq!(gateway_url(None).unwrap(), "");
        for bad in ["llm.example.com", "ftp://x", "http://", "https:///x"] {
            let e = gateway_url(Some(bad.into())).unwrap_err().to_string();
            assert!(e.contains("gateway-url"), "{bad}: {e}");
        }
    }

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
