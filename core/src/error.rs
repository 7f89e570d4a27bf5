//! The one error type of `uni-core`. Servers map it to a gRPC status in one place.

use std::fmt;

/// A problem with one field of a request, named by its path (`spec.workers.min`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Longest field error message kept: messages quote the offending value, which a hostile
/// request makes as long as it likes.
pub const MAX_FIELD_MESSAGE: usize = 512;

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: shorten(path.into(), MAX_FIELD_MESSAGE),
            message: shorten(message.into(), MAX_FIELD_MESSAGE),
        }
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was cut.
pub fn shorten(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("... ({cut} more bytes)"));
    text
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one request; validation reports them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was found, otherwise every error collected.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self))
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was changed.
    #[error("invalid request: {0}")]
    Invalid(FieldErrors),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap lost against a concurrent writer.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A watch asked for history that compaction has removed.
    #[error("revision {requested} has been compacted (oldest available: {compact_revision})")]
    Compacted {
        requested: i64,
        compact_revision: i64,
    },
    #[error("lease {0} not found or expired")]
    LeaseNotFound(i64),
    /// The backing store cannot be reached; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A response would exceed the message size limit; ask for a smaller page.
    #[error("response too large: {0}")]
    TooLarge(String),
    /// The store is out of space (etcd's NOSPACE alarm, a full disk): writes fail until an
    /// operator frees space; reads still work.
    #[error("store out of space: {0}")]
    NoSpace(String),
    #[error("corrupt data at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("hardware catalog: {0}")]
    Catalog(String),
    /// A certificate, key or TLS setting that cannot be loaded or used.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// One field error, for callers that check a single value.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(FieldErrors(vec![FieldError::new(path, message)]))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
