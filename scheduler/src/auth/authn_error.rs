//! Why a bearer token was not accepted, or why an authenticator could not be set up.

/// An authentication failure. Messages say why, and never repeat the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    /// The token is not acceptable: bad signature, expired, wrong issuer or audience, ...
    #[error("token refused: {0}")]
    BadToken(String),
    /// The authenticator's own configuration is wrong: an unreadable token file, a bad JWKS.
    #[error("authentication configuration: {0}")]
    Config(String),
    /// Something the authenticator needs cannot be reached now (the JWKS URL).
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}
