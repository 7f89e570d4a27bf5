//! `uni-scheduler init`: everything a secure cluster needs to start, in one directory — a
//! cluster CA, the API's server certificate, an admin token, a config file that uses them,
//! and a `unictl` context that trusts the CA and presents the token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use uni_core::client::{self, ClientConfig, Context};
use uni_core::tls::pki::Ca;
use uuid::Uuid;

use crate::auth::subject::{BOOTSTRAPPERS_GROUP, MASTERS_GROUP, SCHEDULERS_GROUP};

/// Lifetime of the API's server certificate; replace the files (they are reloaded) before.
pub const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// DNS names and IP addresses the API is reached at (localhost and 127.0.0.1 always).
    pub server_names: Vec<String>,
    /// URL written into the `unictl` context.
    pub server_url: String,
    /// Name of the `unictl` context to write; `None` writes none.
    pub context: Option<String>,
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub config: PathBuf,
    pub token_file: PathBuf,
    pub admin_token: String,
}

impl Initialized {
    /// The files of a directory `init` wrote before.
    pub fn existing(dir: &Path) -> anyhow::Result<Self> {
        let token_file = dir.join("admin.token");
        let admin_token = client::read_token(&token_file)?;
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        Ok(Self {
            token_file: dir.join("admin.token"),
            ca: dir.join("ca.crt"),
            config: dir.join("scheduler.yaml"),
            dir,
            admin_token,
        })
    }
}

pub fn init(opts: &InitOptions) -> anyhow::Result<Initialized> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join("ca.key").exists() {
        bail!(
            "{} already holds a cluster CA; refusing to overwrite it",
            dir.display()
        );
    }
    let ca = Ca::generate("universal-ca")?;
    ca.write(dir, "ca")?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for n in &opts.server_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    // Scheduler replicas also present this certificate as clients of the agents.
    ca.issue_peer(
        "uni-scheduler",
        SCHEDULERS_GROUP,
        &names,
        SERVER_CERT_VALIDITY,
    )?
    .write(&dir.join("server.crt"), &dir.join("server.key"))?;

    let secret = || format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let admin_token = secret();
    let bootstrap_token = secret();
    let tokens = format!(
        "# Static bearer tokens: token, user, groups. Reloaded when changed.\n\
         - token: \"{admin_token}\"\n  user: admin\n  groups: [\"{MASTERS_GROUP}\"]\n\
         # Agents join with this one (uni-agent --bootstrap-token-file); remove it to stop joins.\n\
         - token: \"{bootstrap_token}\"\n  user: system:bootstrap\n  groups: [\"{BOOTSTRAPPERS_GROUP}\"]\n"
    );
    write_private(&dir.join("tokens.yaml"), &tokens)?;
    let token_file = dir.join("admin.token");
    write_private(&token_file, &format!("{admin_token}\n"))?;
    write_private(
        &dir.join("bootstrap.token"),
        &format!("{bootstrap_token}\n"),
    )?;

    let config = dir.join("scheduler.yaml");
    let abs = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let p = |f: &str| abs.join(f).display().to_string();
    let text = format!(
        "# Written by `uni-scheduler init`; pass with --config. Other settings may be added.\n\
         tls-cert: {}\ntls-key: {}\nclient-ca: {}\nca-key: {}\ntoken-file: {}\naudit-log: {}\n",
        p("server.crt"),
        p("server.key"),
        p("ca.crt"),
        p("ca.key"),
        p("tokens.yaml"),
        p("audit.log"),
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;

    let done = Initialized {
        dir: abs.clone(),
        ca: abs.join("ca.crt"),
        config: abs.join("scheduler.yaml"),
        token_file: abs.join("admin.token"),
        admin_token,
    };
    if let Some(name) = &opts.context {
        done.write_context(name, &opts.server_url)?;
    }
    Ok(done)
}

impl Initialized {
    /// Adds (or replaces) the `unictl` context `name` for `server_url` as the admin, and
    /// makes it current.
    pub fn write_context(&self, name: &str, server_url: &str) -> anyhow::Result<()> {
        self.write_context_at(&client::path(), name, server_url)
    }

    /// [`Initialized::write_context`] into the client config file at `config`.
    pub fn write_context_at(
        &self,
        config: &Path,
        name: &str,
        server_url: &str,
    ) -> anyhow::Result<()> {
        let mut cfg = ClientConfig::load_from(config)?;
        cfg.set_context(Context {
            name: name.to_string(),
            server: server_url.to_string(),
            ca: Some(self.ca.clone()),
            token_file: Some(self.token_file.clone()),
            ..Context::default()
        });
        cfg.current_context = name.to_string();
        cfg.save_to(config)?;
        Ok(())
    }

    /// The security settings of a scheduler using these files.
    pub fn security(&self) -> crate::config::Security {
        crate::config::Security {
            tls_cert: Some(self.dir.join("server.crt")),
            tls_key: Some(self.dir.join("server.key")),
            client_ca: Some(self.ca.clone()),
            ca_key: Some(self.dir.join("ca.key")),
            token_file: Some(self.dir.join("tokens.yaml")),
            audit_log: Some(self.dir.join("audit.log")),
            ..crate::config::Security::default()
        }
    }
}

/// Writes a secret, readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
