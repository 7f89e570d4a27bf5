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

/// Suffix of the one server name in a node's certificate, under a domain no API is reached at.
pub const NODE_SERVER_NAME_SUFFIX: &str = ".nodes.universal.internal";

/// The name a node's certificate holds and its agent is verified against.
pub fn node_server_name(node: &str) -> String {
    format!("{node}{NODE_SERVER_NAME_SUFFIX}")
}

/// The one crypto provider every TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
