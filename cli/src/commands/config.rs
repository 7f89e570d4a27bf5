//! `unictl config`: contexts in the client config file.

use clap::Subcommand;

use crate::config::{path, ClientConfig, Context};
use crate::output::table::Table;

#[derive(Subcommand)]
pub enum Command {
    /// Print the config file.
    View,
    /// List contexts; `*` marks the current one.
    GetContexts,
    /// Make a context current.
    UseContext { name: String },
    /// Add or change a context.
    SetContext {
        name: String,
        #[arg(long)]
        server: String,
        #[arg(long, default_value = "")]
        namespace: String,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::load()?;
    match cmd {
        Command::View => print!("{}", serde_yaml::to_string(&cfg)?),
        Command::GetContexts => {
            let mut t = Table::new(vec!["CURRENT", "NAME", "SERVER", "NAMESPACE"]);
            for c in &cfg.contexts {
                let current = if c.name == cfg.current_context {
                    "*"
                } else {
                    ""
                };
                t.row(vec![
                    current.into(),
                    c.name.clone(),
                    c.server.clone(),
                    c.namespace.clone(),
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
        Command::SetContext {
            name,
            server,
            namespace,
        } => {
            cfg.set_context(Context {
                name: name.clone(),
                server,
                namespace,
            });
            if cfg.current_context.is_empty() {
                cfg.current_context = name.clone();
            }
            cfg.save()?;
            println!("context {name:?} set in {}", path().display());
        }
    }
    Ok(())
}
