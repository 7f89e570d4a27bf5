//! How clients (`unictl`, the operator, agents) reach the API: named contexts in the client
//! config file (`~/.config/universal/config.yaml`, or `$UNICTL_CONFIG`), each with the server,
//! the CA to trust and the caller's credential, and a channel that presents that credential
//! on every call.

use std::path::{Path, PathBuf};

/// Largest response an API server sends (a page of objects, one log chunk) and so what
/// clients must accept; pages are also cut by bytes well below it.
pub const MAX_API_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

use serde::{Deserialize, Serialize};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::tls::client::{channel, ClientTls};
use crate::{Error, Result};

pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7070";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientConfig {
    pub current_context: String,
    pub contexts: Vec<Context>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    pub name: String,
    pub server: String,
    /// Namespace used when `-n` is not given.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// CA certificate (PEM file) that signed the server's certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// File holding the bearer token (read on every use, so rotation needs no edit here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Client certificate and key (PEM files), instead of a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

/// The config file's path.
pub fn path() -> PathBuf {
    if let Ok(p) = std::env::var("UNICTL_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".config/universal/config.yaml")
}

fn io<'a>(what: &'a str, p: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    let what = what.to_string();
    move |e| Error::invalid("config", format!("{what} {}: {e}", p.display()))
}

impl ClientConfig {
    /// The file at [`path`].
    pub fn load() -> Result<Self> {
        Self::load_from(&path())
    }

    pub fn load_from(p: &Path) -> Result<Self> {
        match std::fs::read_to_string(p) {
            Ok(text) => serde_yaml::from_str(&text)
                .map_err(|e| Error::invalid("config", format!("parsing {}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io("reading", p)(e)),
        }
    }

    /// Writes the file at [`path`].
    pub fn save(&self) -> Result<()> {
        self.save_to(&path())
    }

    /// Writes the file, readable by its owner only: it may hold tokens.
    pub fn save_to(&self, p: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        let text = serde_yaml::to_string(self)
            .map_err(|e| Error::Internal(format!("encoding the client config: {e}")))?;
        let tmp = p.with_extension("yaml.tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("writing", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, p).map_err(io("writing", p))
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context in use: `wanted`, else the current one.
    pub fn active(&self, wanted: Option<&str>) -> Result<Option<&Context>> {
        match wanted {
            Some(name) => match self.context(name) {
                Some(c) => Ok(Some(c)),
                None => Err(Error::invalid(
                    "context",
                    format!("{name:?} not found in {}", path().display()),
                )),
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

/// Where and as whom to call.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub server: String,
    pub namespace: String,
    pub tls: Option<ClientTls>,
    pub token: Option<String>,
}

/// Overrides from flags and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides<'a> {
    pub server: Option<&'a str>,
    pub context: Option<&'a str>,
    pub token: Option<&'a str>,
}

impl Target {
    /// The server from the flag, else `$UNIVERSAL_SERVER`, else the context, else
    /// [`DEFAULT_SERVER`]; the credential from the flag, else `$UNIVERSAL_TOKEN`, else the
    /// context.
    pub fn resolve(o: &Overrides<'_>) -> Result<Self> {
        let cfg = ClientConfig::load()?;
        let ctx = cfg.active(o.context)?.cloned().unwrap_or_default();
        let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        let server = o
            .server
            .map(str::to_string)
            .or_else(|| env("UNIVERSAL_SERVER"))
            .or_else(|| (!ctx.server.is_empty()).then(|| ctx.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let server = if server.contains("://") {
            server
        } else {
            format!("https://{server}")
        };
        let token = match (
            o.token
                .map(str::to_string)
                .or_else(|| env("UNIVERSAL_TOKEN")),
            &ctx,
        ) {
            (Some(t), _) => Some(t),
            (None, c) => match (&c.token, &c.token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(f)) => Some(read_token(f)?),
                (None, None) => None,
            },
        };
        let tls = if server.starts_with("https://") {
            Some(ClientTls::from_files(
                ctx.ca.as_deref(),
                ctx.client_cert.as_deref(),
                ctx.client_key.as_deref(),
            )?)
        } else {
            None
        };
        let namespace = if ctx.namespace.is_empty() {
            crate::model::DEFAULT_NAMESPACE.to_string()
        } else {
            ctx.namespace
        };
        Ok(Self {
            server,
            namespace,
            tls,
            token,
        })
    }

    /// A channel to the server that sends the token, if any, with every call.
    pub async fn connect(&self) -> Result<AuthChannel> {
        let endpoint = channel(&self.server, self.tls.as_ref())?;
        let ch = endpoint.connect().await.map_err(|e| {
            Error::Unavailable(format!(
                "cannot reach the Universal API at {}: {e}",
                self.server
            ))
        })?;
        Ok(InterceptedService::new(
            ch,
            BearerToken::new(self.token.as_deref())?,
        ))
    }
}

/// A token file's content, trimmed.
pub fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).map_err(io("reading token file", path))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(Error::invalid(
            "token_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(t)
}

/// A channel that authenticates every call.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer TOKEN` to every request (nothing when there is no token).
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    pub fn new(token: Option<&str>) -> Result<Self> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| Error::invalid("token", "must be printable ASCII"))
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}
