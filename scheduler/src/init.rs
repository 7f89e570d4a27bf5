//! `uni-scheduler init`: everything a secure cluster needs to start, in one directory — a
//! cluster CA, the API's server certificate, an admin token, a config file that uses them,
//! and a `unictl` context that trusts the CA and presents the token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uni_core::client::{self, ClientConfig, Context};
use uni_core::tls::pki::Ca;
use uni_core::tls::NODE_SERVER_NAME_SUFFIX;
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

/// How long the bootstrap token `init` writes lets agents join (as kubeadm's default).
pub const BOOTSTRAP_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

fn secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A bootstrap token just added.
#[derive(Debug, Clone)]
pub struct BootstrapToken {
    /// `DIR/bootstrap.token`, for `uni-agent --bootstrap-token-file`.
    pub file: PathBuf,
    pub expires: OffsetDateTime,
}

/// Adds a bootstrap token that lets agents join for `ttl` to `DIR/tokens.yaml` (which a
/// running scheduler rereads) and writes it to `DIR/bootstrap.token`. Expired bootstrap
/// tokens are refused, so agents that joined keep working and new ones need a new token.
pub fn bootstrap_token(dir: &Path, ttl: Duration) -> anyhow::Result<BootstrapToken> {
    use std::io::Write;
    let tokens = dir.join("tokens.yaml");
    if !tokens.exists() {
        bail!(
            "{} holds no tokens.yaml: run `uni-scheduler init --dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    let token = secret();
    let expires = OffsetDateTime::now_utc() + ttl;
    let stamp = expires.replace_nanosecond(0)?.format(&Rfc3339)?;
    let entry = format!(
        "# Agents join with this one (uni-agent --bootstrap-token-file) until it expires.\n\
         - token: \"{token}\"\n  user: system:bootstrap\n  groups: [\"{BOOTSTRAPPERS_GROUP}\"]\n  \
         expires: {stamp}\n"
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&tokens)
        .with_context(|| format!("opening {}", tokens.display()))?;
    f.write_all(entry.as_bytes())
        .with_context(|| format!("writing {}", tokens.display()))?;
    let file = dir.join("bootstrap.token");
    write_private(&file, &format!("{token}\n"))?;
    Ok(BootstrapToken { file, expires })
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
        if n.ends_with(NODE_SERVER_NAME_SUFFIX) {
            bail!("--server-name {n:?}: names under {NODE_SERVER_NAME_SUFFIX} are nodes'");
        }
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

    let admin_token = secret();
    let tokens = format!(
        "# Static bearer tokens: token, user, groups, optional expires. Reloaded when changed.\n\
         - token: \"{admin_token}\"\n  user: admin\n  groups: [\"{MASTERS_GROUP}\"]\n"
    );
    write_private(&dir.join("tokens.yaml"), &tokens)?;
    let token_file = dir.join("admin.token");
    write_private(&token_file, &format!("{admin_token}\n"))?;
    bootstrap_token(dir, BOOTSTRAP_TOKEN_TTL)?;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::subject::Subject;
    use crate::auth::tokens::TokenFile;

    #[test]
    fn bootstrap_tokens_are_added_with_an_expiry_and_leave_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let done = init(&InitOptions {
            dir: dir.path().to_path_buf(),
            server_names: vec![],
            server_url: "https://127.0.0.1:7070".into(),
            context: None,
        })
        .unwrap();
        let read = |f: &Path| std::fs::read_to_string(f).unwrap().trim().to_string();
        let first = read(&dir.path().join("bootstrap.token"));
        let added = bootstrap_token(dir.path(), Duration::from_secs(3600)).unwrap();
        let second = read(&added.file);
        assert_ne!(first, second);
        let left = added.expires - OffsetDateTime::now_utc();
        assert!(left > time::Duration::minutes(59) && left <= time::Duration::hours(1));

        let tokens = TokenFile::load(&dir.path().join("tokens.yaml")).unwrap();
        assert_eq!(tokens.len(), 3);
        let bootstrapper = Subject::new("system:bootstrap", vec![BOOTSTRAPPERS_GROUP.into()]);
        for t in [&first, &second] {
            assert_eq!(tokens.lookup(t).unwrap(), Some(bootstrapper.clone()));
        }
        let admin = tokens.lookup(&done.admin_token).unwrap().unwrap();
        assert!(admin.groups.contains(&MASTERS_GROUP.to_string()));
        assert!(init(&InitOptions {
            dir: dir.path().to_path_buf(),
            server_names: vec![],
            server_url: String::new(),
            context: None,
        })
        .is_err());

        let empty = tempfile::tempdir().unwrap();
        let msg = bootstrap_token(empty.path(), BOOTSTRAP_TOKEN_TTL)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("uni-scheduler init"), "{msg}");
    }
}
