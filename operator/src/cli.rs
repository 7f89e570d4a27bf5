//! Command line: `uni-operator crdgen` and `uni-operator run`. Every flag of `run` can also
//! come from the environment (flags win).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "uni-operator",
    version,
    about = "Kubernetes operator for Universal"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints the CustomResourceDefinitions as YAML, or writes one file per CRD.
    Crdgen {
        /// Write `{plural}.universal.dev.yaml` files here instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Watches the custom resources and mirrors them into Universal.
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Universal API endpoint, e.g. https://uni-scheduler.universal-system:7070.
    #[arg(long, env = "UNIVERSAL_SCHEDULER")]
    pub scheduler: String,
    /// CA certificate that signed the scheduler's certificate (default: the system roots).
    #[arg(long, env = "UNIVERSAL_CA")]
    pub ca: Option<PathBuf>,
    /// Watch workload resources in this namespace only; default: every namespace.
    #[arg(long, env = "UNIVERSAL_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Mirror Queue resources (cluster-scoped).
    #[arg(long, env = "UNIVERSAL_OPERATOR_QUEUES", default_value_t = true, action = clap::ArgAction::Set)]
    pub queues: bool,
    /// Kubernetes namespaces whose resources may name `runAsUser`/`runAsGroup` (comma-separated;
    /// `*`: every namespace); elsewhere such a resource is refused. Default: none, so editing
    /// resources in a namespace never gives root, or another host user, on the nodes.
    #[arg(
        long,
        env = "UNIVERSAL_OPERATOR_HOST_IDENTITY_NAMESPACES",
        value_delimiter = ','
    )]
    pub host_identity_namespaces: Vec<String>,
    /// File holding the bearer token for the Universal API.
    #[arg(long, env = "UNIVERSAL_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds between level-triggered resyncs of every resource (status refresh, drift
    /// repair).
    #[arg(long, env = "UNIVERSAL_OPERATOR_RESYNC_SECONDS", default_value_t = 30)]
    pub resync_seconds: u64,
    /// Run only while holding the leader Lease.
    #[arg(long, env = "UNIVERSAL_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader Lease; default: the pod's namespace ($POD_NAMESPACE), else
    /// "default".
    #[arg(long, env = "UNIVERSAL_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    #[arg(
        long,
        env = "UNIVERSAL_OPERATOR_LEASE_NAME",
        default_value = "uni-operator"
    )]
    pub lease_name: String,
    /// Lease duration; renew deadline and retry period follow in client-go's proportions.
    #[arg(long, env = "UNIVERSAL_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// This replica's identity in the Lease and in Events; default: $POD_NAME, else the host
    /// name and process id.
    #[arg(long, env = "UNIVERSAL_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
}

impl RunArgs {
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(1))
    }

    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.max(2))
    }

    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME")
                    .ok()
                    .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "uni-operator".into());
                format!("{host}-{}", std::process::id())
            })
    }

    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags_parse_with_defaults() {
        let cli = Cli::try_parse_from([
            "uni-operator",
            "run",
            "--scheduler",
            "http://127.0.0.1:7070",
            "--namespace",
            "team-a",
            "--leader-election",
            "false",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected");
        };
        assert_eq!(args.namespace.as_deref(), Some("team-a"));
        assert!(!args.leader_election);
        assert!(args.queues);
        assert_eq!(args.resync(), Duration::from_secs(30));
        assert_eq!(args.lease_duration(), Duration::from_secs(15));
        assert_eq!(args.identity.as_deref(), None);
    }
}
