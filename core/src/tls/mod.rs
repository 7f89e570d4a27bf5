//! TLS for every connection Universal makes: loading PEM files, a small certificate
//! authority for `init` and node bootstrap, a server acceptor that reloads rotated
//! certificates without a restart, and client settings for tonic channels.

pub mod client;
pub mod pem;
pub mod pki;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// Organization of the scheduler's certificate: agents serve logs to it alone.
pub const SCHEDULERS_GROUP: &str = "system:schedulers";

/// The one crypto provider every TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
