//! Checks of request arguments shared by the services; each failure names its field.

use uni_core::model::{Selector, DEFAULT_NAMESPACE};
use uni_core::store::keys::check_segment;
use uni_core::Error as CoreError;

use crate::error::Result;

/// A required message field that the request left unset.
pub(crate) fn required(field: &str) -> CoreError {
    CoreError::invalid(field, "required")
}

/// The request's label selector, empty matching everything.
pub(crate) fn selector(field: &str, s: &str) -> Result<Selector> {
    Ok(Selector::parse(s).map_err(|e| CoreError::invalid(field, e))?)
}

/// A namespace argument: empty means "default"; it must fit in one key segment.
pub(crate) fn namespace(ns: &str) -> Result<String> {
    let ns = if ns.is_empty() { DEFAULT_NAMESPACE } else { ns };
    check_segment("namespace", ns)?;
    Ok(ns.to_string())
}
