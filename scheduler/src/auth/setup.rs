//! Turning the security settings into a running [`Auth`] and TLS acceptor, refusing settings
//! that would leave the API open by accident.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::store::KvStore;
use uni_core::tls::pki::Ca;
use uni_core::tls::server::{ReloadingAcceptor, TlsFiles};

use super::audit::AuditLog;
use super::bindings::Bindings;
use super::oidc::{JwksSource, OidcConfig, OidcVerifier};
use super::tokens::ReloadingTokens;
use super::{AgentClientFiles, Auth, Authenticators};
use crate::config::Security;

/// How often certificate and token files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// A background task the caller owns.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What serving securely needs: the authorization of every call, the TLS acceptor (`None`
/// in insecure mode), and the tasks that keep them current until `cancel`.
pub struct Secured {
    pub auth: Arc<Auth>,
    pub tls: Option<ReloadingAcceptor>,
    pub tasks: Vec<Task>,
}

pub async fn secure(
    security: &Security,
    listen: &[SocketAddr],
    store: Arc<dyn KvStore>,
    cancel: &CancellationToken,
) -> anyhow::Result<Secured> {
    let audit = match &security.audit_log {
        Some(p) => Some(AuditLog::open(p).with_context(|| format!("audit log {}", p.display()))?),
        None => None,
    };
    if security.insecure {
        if let Some(addr) = listen.iter().find(|a| !a.ip().is_loopback()) {
            bail!(
                "--insecure serves without TLS or authentication, so only on loopback; \
                 {addr} is not (use 127.0.0.1, or run `uni-scheduler init` for a secure setup)"
            );
        }
        warn!("INSECURE: no TLS and no authentication; every caller is an administrator");
        return Ok(Secured {
            auth: Arc::new(Auth::open(audit)),
            tls: None,
            tasks: Vec::new(),
        });
    }
    let (Some(cert), Some(key)) = (&security.tls_cert, &security.tls_key) else {
        bail!(
            "the API serves TLS only: set tls-cert and tls-key (`uni-scheduler init --dir DIR` \
             creates them), or --insecure on a loopback address for local tests"
        );
    };
    let tokens = match &security.token_file {
        Some(p) => {
            Some(ReloadingTokens::load(p).with_context(|| format!("token file {}", p.display()))?)
        }
        None => None,
    };
    let oidc = match &security.oidc {
        Some(o) => {
            let jwks = if o.jwks.starts_with("http://") || o.jwks.starts_with("https://") {
                JwksSource::Url(o.jwks.clone())
            } else {
                JwksSource::File(o.jwks.clone().into())
            };
            let cfg = OidcConfig {
                issuer: o.issuer.clone(),
                audience: o.audience.clone(),
                jwks,
                username_claim: o.username_claim.clone(),
                groups_claim: o.groups_claim.clone(),
                ..OidcConfig::default()
            };
            Some(OidcVerifier::new(cfg).await.context("OIDC")?)
        }
        None => None,
    };
    if security.client_ca.is_none() && tokens.is_none() && oidc.is_none() {
        bail!("no way to authenticate callers: set client-ca, token-file or oidc-issuer");
    }
    let acceptor = ReloadingAcceptor::load(TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: security.client_ca.clone(),
    })
    .context("API TLS")?;
    let (bindings, watch) = Bindings::watched(store, cancel.child_token());
    let mut tasks: Vec<Task> = vec![
        Box::pin(watch),
        Box::pin(
            acceptor
                .clone()
                .watch(RELOAD_INTERVAL, cancel.child_token()),
        ),
    ];
    let mut auth = Auth::enforced(Authenticators { tokens, oidc }, bindings, audit);
    if let Some(key) = &security.ca_key {
        let Some(ca) = &security.client_ca else {
            bail!("ca-key needs client-ca, the certificate of the same CA");
        };
        auth = auth.with_signer(Ca::load(ca, key).context("cluster CA")?);
    }
    if let Some(ca) = &security.client_ca {
        auth = auth.with_agent_client(AgentClientFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let auth = Arc::new(auth);
    if auth.authenticators().tokens.is_some() {
        let auth = auth.clone();
        let cancel = cancel.child_token();
        tasks.push(Box::pin(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(RELOAD_INTERVAL) => {}
                }
                if let Some(t) = &auth.authenticators().tokens {
                    match t.reload_if_changed() {
                        Ok(true) => info!("token file reloaded"),
                        Ok(false) => {}
                        Err(e) => warn!(error = %e, "token file not reloaded"),
                    }
                }
            }
        }));
    }
    Ok(Secured {
        auth,
        tls: Some(acceptor),
        tasks,
    })
}
