//! Client configuration: named contexts in `~/.config/universal/config.yaml` (or
//! `$UNICTL_CONFIG`). The server comes from `--server`, else `$UNIVERSAL_SERVER`, else the
//! chosen context (`--context`, else `current-context`), else `http://127.0.0.1:7070`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientConfig {
    pub current_context: String,
    pub contexts: Vec<Context>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub name: String,
    pub server: String,
    /// Namespace used when `-n` is not given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

pub fn path() -> PathBuf {
    if let Ok(p) = std::env::var("UNICTL_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".config/universal/config.yaml")
}

impl ClientConfig {
    pub fn load() -> anyhow::Result<Self> {
        let p = path();
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                serde_yaml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let p = path();
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&p, serde_yaml::to_string(self)?)
            .with_context(|| format!("writing {}", p.display()))
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context in use: `wanted`, else the current one.
    pub fn active(&self, wanted: Option<&str>) -> anyhow::Result<Option<&Context>> {
        match wanted {
            Some(name) => match self.context(name) {
                Some(c) => Ok(Some(c)),
                None => bail!("context {name:?} not found in {}", path().display()),
            },
            None if self.current_context.is_empty() => Ok(None),
            None => Ok(self.context(&self.current_context)),
        }
    }

    pub fn set_context(&mut self, ctx: Context) {
        match self.contexts.iter_mut().find(|c| c.name == ctx.name) {
            Some(c) => *c = ctx,
            None => self.contexts.push(ctx),
        }
    }
}

/// The server to talk to and the default namespace, by the precedence above.
pub fn resolve(flag: Option<&str>, context: Option<&str>) -> anyhow::Result<(String, String)> {
    let cfg = ClientConfig::load()?;
    let ctx = cfg.active(context)?;
    let server = flag
        .map(str::to_string)
        .or_else(|| {
            std::env::var("UNIVERSAL_SERVER")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| ctx.map(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    let namespace = ctx
        .map(|c| c.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let server = if server.contains("://") {
        server
    } else {
        format!("http://{server}")
    };
    Ok((server, namespace))
}
