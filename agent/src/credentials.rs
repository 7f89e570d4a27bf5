//! A node's credential for the control plane: a client certificate for
//! `system:node:NAME`, got once with a bootstrap token (`JoinNode`) and renewed with itself
//! before it expires. The agent reaches the store only through the scheduler's gateway
//! with it; it never holds etcd credentials.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uni_core::client::{read_token, AuthChannel, Target};
use uni_core::store::RemoteStore;
use uni_core::tls::client::ClientTls;
use uni_core::tls::pki::{cert_info_pem, generate_csr, write_file, CertInfo};
use uni_proto::v1 as pb;
use uni_proto::v1::agent_gateway_service_client::AgentGatewayServiceClient;

use crate::error::{Error, Result};

/// How often the certificate's age is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The API, `https://host:port`.
    pub server: String,
    /// The cluster CA (written at join when missing).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Bearer token of group `system:bootstrappers`, for the first join.
    pub bootstrap_token_file: Option<PathBuf>,
    pub node: String,
}

/// Whether a certificate is past two thirds of its life (or unreadable in time).
pub fn renewal_due(info: &CertInfo, now: SystemTime) -> bool {
    let life = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    now >= info.not_before + life * 2 / 3
}

fn status(what: &str) -> impl FnOnce(tonic::Status) -> Error + '_ {
    move |s| Error::Server(format!("{what}: {}", s.message()))
}

impl NodeCredentials {
    fn target(&self, token: Option<String>, identity: bool) -> Result<Target> {
        let tls = ClientTls::from_files(
            self.ca.exists().then_some(self.ca.as_path()),
            identity.then_some(self.cert.as_path()),
            identity.then_some(self.key.as_path()),
        )?;
        Ok(Target {
            server: self.server.clone(),
            namespace: String::new(),
            tls: Some(tls),
            token,
        })
    }

    /// Joins with the bootstrap token unless a certificate is already there.
    pub async fn ensure(&self) -> Result<()> {
        if self.cert.exists() && self.key.exists() {
            return Ok(());
        }
        let Some(file) = &self.bootstrap_token_file else {
            return Err(Error::Config(format!(
                "no node certificate at {} and no bootstrap token to join with \
                 (--bootstrap-token-file)",
                self.cert.display()
            )));
        };
        let token = read_token(file)?;
        if !self.ca.exists() {
            return Err(Error::Config(format!(
                "joining needs the cluster CA at {} (--ca) to verify the API",
                self.ca.display()
            )));
        }
        let channel = self.target(Some(token), false)?.connect().await?;
        let (csr, key) = generate_csr(&self.node)?;
        let r = AgentGatewayServiceClient::new(channel)
            .join_node(pb::JoinNodeRequest {
                node_name: self.node.clone(),
                csr_pem: csr,
            })
            .await
            .map_err(status("joining the cluster"))?
            .into_inner();
        self.store(&r, &key)?;
        info!(node = %self.node, cert = %self.cert.display(), "joined the cluster");
        Ok(())
    }

    fn store(&self, r: &pb::JoinNodeResponse, key_pem: &str) -> Result<()> {
        for p in [&self.cert, &self.key] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(Error::at("creating", dir))?;
            }
        }
        // Key first: a certificate on disk always has its key.
        write_file(&self.key, key_pem, 0o600)?;
        write_file(&self.cert, &r.certificate_pem, 0o644)?;
        // The CA comes over a connection verified with the current one, so a changed CA
        // (rotation) is taken as sent.
        if std::fs::read_to_string(&self.ca).ok().as_deref() != Some(r.ca_pem.as_str()) {
            write_file(&self.ca, &r.ca_pem, 0o644)?;
        }
        Ok(())
    }

    /// A channel presenting the node certificate.
    pub async fn connect(&self) -> Result<AuthChannel> {
        Ok(self.target(None, true)?.connect().await?)
    }

    /// Exchanges a new key's CSR for a new certificate, authenticated by the current one.
    pub async fn renew(&self) -> Result<()> {
        let (csr, key) = generate_csr(&self.node)?;
        let r = AgentGatewayServiceClient::new(self.connect().await?)
            .renew_node_certificate(pb::RenewNodeCertificateRequest { csr_pem: csr })
            .await
            .map_err(status("renewing the node certificate"))?
            .into_inner();
        self.store(&r, &key)
    }

    fn info(&self) -> Result<CertInfo> {
        let pem = std::fs::read_to_string(&self.cert).map_err(Error::at("reading", &self.cert))?;
        Ok(cert_info_pem(&pem)?)
    }

    /// Renews the certificate when due and moves `store` to a channel presenting the new
    /// one, until `cancel`.
    pub async fn keep_renewed(self, store: Arc<RemoteStore>, cancel: CancellationToken) {
        loop {
            let due = match self.info() {
                Ok(info) => renewal_due(&info, SystemTime::now()),
                Err(e) => {
                    warn!(error = %e, "cannot read the node certificate");
                    false
                }
            };
            if due {
                match self.renew().await {
                    Ok(()) => match self.connect().await {
                        Ok(ch) => {
                            store.replace_channel(ch);
                            info!(cert = %self.cert.display(), "node certificate renewed");
                        }
                        Err(e) => {
                            warn!(error = %e, "renewed, but cannot connect with the new certificate")
                        }
                    },
                    Err(e) => warn!(error = %e, "node certificate not renewed; retrying"),
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_life() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = CertInfo {
            common_name: "system:node:n".into(),
            organizations: vec![],
            server_names: vec![],
            not_before: start,
            not_after: start + Duration::from_secs(300),
        };
        assert!(!renewal_due(&info, start + Duration::from_secs(199)));
        assert!(renewal_due(&info, start + Duration::from_secs(200)));
        assert!(renewal_due(&info, start + Duration::from_secs(400)));
    }
}
