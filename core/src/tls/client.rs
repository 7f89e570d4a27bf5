//! Client TLS for tonic channels: the CA to trust and, optionally, a client certificate.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{Error, Result};

/// How a client verifies the server and, with an identity, proves who it is.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA that signed the server's certificate; `None` trusts the system roots.
    pub ca_pem: Option<String>,
    /// A client certificate and key (PEM).
    pub identity: Option<(String, String)>,
    /// The name to verify the server certificate against, when not the URL's host.
    pub domain: Option<String>,
}

fn read(what: &str, p: &Path) -> Result<String> {
    std::fs::read_to_string(p)
        .map_err(|e| Error::Tls(format!("reading {what} {}: {e}", p.display())))
}

impl ClientTls {
    /// From files; a certificate needs its key and the other way round.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read("client certificate", c)?, read("client key", k)?)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid("client_key", "required with client_cert"))
            }
            (None, Some(_)) => {
                return Err(Error::invalid("client_cert", "required with client_key"))
            }
        };
        Ok(Self {
            ca_pem: ca.map(|p| read("CA", p)).transpose()?,
            identity,
            domain: None,
        })
    }

    /// The same settings as tonic wants them.
    pub fn to_tonic(&self) -> ClientTlsConfig {
        let mut cfg = ClientTlsConfig::new();
        cfg = match &self.ca_pem {
            Some(ca) => cfg.ca_certificate(Certificate::from_pem(ca)),
            None => cfg.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            cfg = cfg.identity(Identity::from_pem(cert, key));
        }
        if let Some(d) = &self.domain {
            cfg = cfg.domain_name(d.clone());
        }
        cfg
    }
}

/// An endpoint for `url`: TLS for `https://` (with `tls`, else the system roots), plaintext
/// for `http://`.
pub fn channel(url: &str, tls: Option<&ClientTls>) -> Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| Error::invalid("server", format!("{url:?} is not a URL: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let cfg = tls.cloned().unwrap_or_default().to_tonic();
        endpoint
            .tls_config(cfg)
            .map_err(|e| Error::Tls(format!("{url}: {e}")))
    } else if tls.is_some_and(|t| t.identity.is_some()) {
        Err(Error::invalid(
            "server",
            format!("{url} is plaintext; a client certificate needs https://"),
        ))
    } else {
        Ok(endpoint)
    }
}
