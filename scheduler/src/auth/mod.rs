//! Who is calling, and may they? Every RPC authenticates its caller ([`Auth::caller`]) from a
//! client certificate (verified by TLS against the cluster CA), a static token or an OIDC
//! token, then checks each thing it does against the role bindings ([`Caller::check`]).
//! Mutating calls are written to the audit log.

pub mod audit;
pub mod authn_error;
pub mod bindings;
pub mod oidc;
pub mod setup;
pub mod subject;
pub mod tokens;

use std::sync::Arc;

use tonic::{Code, Request, Status};
use uni_core::model::{Resource, Verb};
use uni_core::tls::pki::{cert_info, Ca};
use uni_core::tls::server::PeerInfo;

use audit::{AuditLog, Entry};
use bindings::Bindings;
use oidc::{looks_like_jwt, OidcVerifier};
use subject::{Subject, MASTERS_GROUP};
use tokens::ReloadingTokens;

/// How the server authenticates; built from the configuration.
#[derive(Default)]
pub struct Authenticators {
    pub tokens: Option<ReloadingTokens>,
    pub oidc: Option<OidcVerifier>,
}

/// The server's authentication and authorization.
pub struct Auth {
    /// `false` only in open mode, where every caller is an administrator.
    enforced: bool,
    authn: Authenticators,
    bindings: Bindings,
    audit: Option<AuditLog>,
    /// The cluster CA with its key, when node certificates are issued here.
    signer: Option<Arc<Ca>>,
    /// What this replica presents to the agents' log services: (CA, certificate, key) files.
    agent_client: Option<AgentClientFiles>,
}

/// Files read for every connection to an agent, so that rotated ones are used at once.
#[derive(Debug, Clone)]
pub struct AgentClientFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// An authenticated caller of one request.
#[derive(Clone)]
pub struct Caller {
    pub subject: Subject,
    auth: Arc<Auth>,
}

impl Auth {
    /// Authentication and authorization enforced.
    pub fn enforced(authn: Authenticators, bindings: Bindings, audit: Option<AuditLog>) -> Self {
        Self {
            enforced: true,
            authn,
            bindings,
            audit,
            signer: None,
            agent_client: None,
        }
    }

    /// Calls agents over TLS as `files`.
    pub fn with_agent_client(mut self, files: AgentClientFiles) -> Self {
        self.agent_client = Some(files);
        self
    }

    pub fn agent_client(&self) -> Option<&AgentClientFiles> {
        self.agent_client.as_ref()
    }

    /// Issues node certificates with `ca` (bootstrap joins and renewals).
    pub fn with_signer(mut self, ca: Ca) -> Self {
        self.signer = Some(Arc::new(ca));
        self
    }

    pub fn signer(&self) -> Option<&Ca> {
        self.signer.as_deref()
    }

    /// Open mode: every caller is an anonymous administrator (still audited).
    pub fn open(audit: Option<AuditLog>) -> Self {
        Self {
            enforced: false,
            authn: Authenticators::default(),
            bindings: Bindings::fixed(Vec::new()),
            audit,
            signer: None,
            agent_client: None,
        }
    }

    pub fn is_enforced(&self) -> bool {
        self.enforced
    }

    /// Waits (boundedly) until a role binding written at `revision` is in force here, so the
    /// writer's next call sees it.
    pub async fn bindings_reached(&self, revision: uni_core::store::Revision) {
        if self.enforced && !self.bindings.reached(revision).await {
            tracing::warn!(revision, "role bindings lag the store");
        }
    }

    pub fn authenticators(&self) -> &Authenticators {
        &self.authn
    }

    /// The caller of `req`: its client certificate, else its bearer token.
    pub async fn caller<T>(self: &Arc<Self>, req: &Request<T>) -> Result<Caller, Status> {
        let subject = self.authenticate(req).await?;
        if self.enforced && !self.bindings.synced().await {
            return Err(Status::unavailable(
                "role bindings not loaded yet; try again",
            ));
        }
        Ok(Caller {
            subject,
            auth: self.clone(),
        })
    }

    async fn authenticate<T>(&self, req: &Request<T>) -> Result<Subject, Status> {
        if !self.enforced {
            return Ok(Subject::new("anonymous", vec![MASTERS_GROUP.to_string()]));
        }
        if let Some(certs) = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.client_certs.clone())
        {
            // The TLS handshake verified the chain against the cluster CA.
            let leaf = certs
                .first()
                .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
            let info = cert_info(leaf.as_ref())
                .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
            if info.common_name.is_empty() {
                return Err(Status::unauthenticated(
                    "client certificate has no common name",
                ));
            }
            return Ok(Subject::new(info.common_name, info.organizations));
        }
        let token = bearer(req)?;
        if let Some(tokens) = &self.authn.tokens {
            let found = tokens
                .lookup(token)
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
            if let Some(s) = found {
                return Ok(s);
            }
        }
        if let Some(oidc) = &self.authn.oidc {
            if looks_like_jwt(token) {
                return oidc
                    .verify(token)
                    .await
                    .map_err(|e| Status::unauthenticated(e.to_string()));
            }
        }
        Err(Status::unauthenticated("unknown bearer token"))
    }
}

/// The bearer token of a request's `authorization` metadata.
fn bearer<T>(req: &Request<T>) -> Result<&str, Status> {
    let value = req.metadata().get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "no credentials: send a client certificate or `authorization: Bearer TOKEN`",
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization metadata must be `Bearer TOKEN`"))
}

impl Caller {
    /// Whether the caller may do `verb` on `resource` in `namespace`.
    pub fn can(&self, verb: Verb, resource: Resource, namespace: &str) -> bool {
        !self.auth.enforced
            || self
                .auth
                .bindings
                .allows(&self.subject, verb, resource, namespace)
    }

    /// `PermissionDenied` naming the verb, resource and namespace unless allowed.
    pub fn check(&self, verb: Verb, resource: Resource, namespace: &str) -> Result<(), Status> {
        if self.can(verb, resource, namespace) {
            return Ok(());
        }
        let place = if resource.cluster_scoped() {
            String::new()
        } else if namespace.is_empty() {
            " in every namespace".to_string()
        } else {
            format!(" in namespace {namespace:?}")
        };
        let message = format!(
            "user {:?} may not {verb} {resource}{place}",
            self.subject.user
        );
        // Names and namespaces come from the request, the user from a token's claims.
        Err(Status::permission_denied(uni_core::error::shorten(
            message,
            crate::error::MAX_STATUS_MESSAGE,
        )))
    }

    /// Checks, runs `call` if allowed, and records the outcome in the audit log.
    pub async fn audited<R, F>(
        &self,
        verb: Verb,
        resource: Resource,
        namespace: &str,
        name: &str,
        call: F,
    ) -> Result<R, Status>
    where
        F: std::future::Future<Output = Result<R, Status>>,
    {
        let checked = async {
            self.check(verb, resource, namespace)?;
            call.await
        };
        self.audited_unchecked(verb, resource, namespace, name, checked)
            .await
    }

    /// Runs `call`, which authorizes itself, and records the outcome in the audit log.
    pub async fn audited_unchecked<R, F>(
        &self,
        verb: Verb,
        resource: Resource,
        namespace: &str,
        name: &str,
        call: F,
    ) -> Result<R, Status>
    where
        F: std::future::Future<Output = Result<R, Status>>,
    {
        let result = call.await;
        if let Some(log) = &self.auth.audit {
            let (code, message) = match &result {
                Ok(_) => (Code::Ok, ""),
                Err(s) => (s.code(), s.message()),
            };
            log.record(&Entry {
                who: &self.subject,
                verb,
                resource,
                namespace,
                name,
                code,
                message,
            });
        }
        result
    }

    /// The bindings' view of the caller, for WhoAmI.
    pub fn bindings(&self) -> &Bindings {
        &self.auth.bindings
    }
}
