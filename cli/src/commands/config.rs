//! `unictl config`: contexts in the client config file.

use std::path::PathBuf;

use clap::Subcommand;
use uni_core::client::{path, ClientConfig, Context};

use crate::output::table::Table;

#[derive(Subcommand)]
pub enum Command {
    /// Print the config file, tokens redacted.
    View {
        /// Show tokens too.
        #[arg(long)]
        raw: bool,
    },
    /// List contexts; `*` marks the current one.
    GetContexts,
    /// Make a context current.
    UseContext { name: String },
    /// Add or change a context; flags not given keep their value.
    SetContext(SetContext),
}

#[derive(clap::Args)]
pub struct SetContext {
    name: String,
    /// e.g. https://10.0.0.5:7070.
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    namespace: Option<String>,
    /// CA certificate that signed the server's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Bearer token, stored in the config file (0600).
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the bearer token, read on every call.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Client certificate (with --client-key) instead of a token.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

fn absolute(p: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(&p)?)
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::load()?;
    match cmd {
        Command::View { raw } => {
            if !raw {
                for c in &mut cfg.contexts {
                    if c.token.is_some() {
                        c.token = Some("REDACTED".into());
                    }
                }
            }
            print!("{}", serde_yaml::to_string(&cfg)?)
        }
        Command::GetContexts => {
            let mut t = Table::new(vec!["CURRENT", "NAME", "SERVER", "NAMESPACE", "AUTH"]);
            for c in &cfg.contexts {
                let current = if c.name == cfg.current_context {
                    "*"
                } else {
                    ""
                };
                let auth = if c.client_cert.is_some() {
                    "certificate"
                } else if c.token.is_some() || c.token_file.is_some() {
                    "token"
                } else {
                    "none"
                };
                t.row(vec![
                    current.into(),
                    c.name.clone(),
                    c.server.clone(),
                    c.namespace.clone(),
                    auth.into(),
                ]);
            }
            print!("{}", t.render());
        }
        Command::UseContext { name } => {
            if cfg.context(&name).is_none() {
                anyhow::bail!("context {name:?} not found in {}", path().display());
            }
            cfg.current_context = name.clone();
            cfg.save()?;
            println!("switched to context {name:?}");
        }
        Command::SetContext(s) => {
            let mut ctx = cfg.context(&s.name).cloned().unwrap_or_else(|| Context {
                name: s.name.clone(),
                ..Context::default()
            });
            if let Some(v) = s.server {
                ctx.server = v;
            }
            if ctx.server.is_empty() {
                anyhow::bail!("--server is required for a new context");
            }
            if let Some(v) = s.namespace {
                ctx.namespace = v;
            }
            if let Some(v) = s.ca {
                ctx.ca = Some(absolute(v)?);
            }
            if let Some(v) = s.token {
                ctx.token = Some(v);
                ctx.token_file = None;
            }
            if let Some(v) = s.token_file {
                ctx.token_file = Some(absolute(v)?);
                ctx.token = None;
            }
            if let (Some(cert), Some(key)) = (s.client_cert, s.client_key) {
                ctx.client_cert = Some(absolute(cert)?);
                ctx.client_key = Some(absolute(key)?);
            }
            cfg.set_context(ctx);
            if cfg.current_context.is_empty() {
                cfg.current_context = s.name.clone();
            }
            cfg.save()?;
            println!("context {:?} set in {}", s.name, path().display());
        }
    }
    Ok(())
}
