//! Conversions between the wire types of `uni-proto` and the domain model.
//!
//! `From<&domain>` for proto never fails. Proto to domain is `TryFrom`: it applies the defaults
//! the API documents (0 or unset fields become their default), parses quantities and selectors,
//! and collects every problem with its field path (`spec.template.resources.memory: invalid
//! quantity "12Qi": unknown suffix`) into one [`Error::Invalid`]. Semantic checks live in
//! [`crate::validate`]; [`workload_from_request`] and [`queue_from_request`] run both.

mod access;
mod cluster;
mod common;
mod event;
mod node;
mod queue;
mod request;
mod resources;
mod spec;
mod workload;

pub use common::{timestamp_from_proto, timestamp_to_proto};
pub use event::event_type_filter;
pub use request::{queue_from_request, role_binding_from_request, workload_from_request};
pub use workload::workload_kind_filter;

use crate::error::{Error, FieldErrors};
use crate::quantity;

/// Conversion from a wire type that records problems instead of stopping at the first.
pub(crate) trait FromProto<P>: Sized {
    fn from_proto(p: &P, path: &str, errs: &mut FieldErrors) -> Self;
}

/// Converts `p` as the root object, failing with every problem found.
pub(crate) fn decode<P, D: FromProto<P>>(p: &P) -> Result<D, Error> {
    let mut errs = FieldErrors::default();
    let value = D::from_proto(p, "", &mut errs);
    errs.into_result().map(|()| value)
}

/// `path.field`, or `field` at the root.
pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// An optional message field; unset is the domain default.
pub(crate) fn opt<P, D: FromProto<P> + Default>(
    p: Option<&P>,
    path: &str,
    field: &str,
    errs: &mut FieldErrors,
) -> D {
    p.map(|p| D::from_proto(p, &join(path, field), errs))
        .unwrap_or_default()
}

/// A repeated message field, items named `field[i]`.
pub(crate) fn list<P, D: FromProto<P>>(
    items: &[P],
    path: &str,
    field: &str,
    errs: &mut FieldErrors,
) -> Vec<D> {
    let base = join(path, field);
    items
        .iter()
        .enumerate()
        .map(|(i, p)| D::from_proto(p, &format!("{base}[{i}]"), errs))
        .collect()
}

fn quantity_error(errs: &mut FieldErrors, path: String, s: &str, e: String) {
    errs.push(path, format!("invalid quantity {s:?}: {e}"));
}

/// Compute quantity; empty is 0 (validation says whether that is allowed).
pub(crate) fn milli(s: &str, path: &str, field: &str, errs: &mut FieldErrors) -> u64 {
    opt_milli(s, path, field, errs).unwrap_or(0)
}

/// Byte quantity; empty is 0.
pub(crate) fn bytes(s: &str, path: &str, field: &str, errs: &mut FieldErrors) -> u64 {
    opt_bytes(s, path, field, errs).unwrap_or(0)
}

/// Compute quantity; empty is `None`.
pub(crate) fn opt_milli(s: &str, path: &str, field: &str, errs: &mut FieldErrors) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    quantity::parse_milli(s)
        .map_err(|e| quantity_error(errs, join(path, field), s, e))
        .ok()
}

/// Byte quantity; empty is `None`.
pub(crate) fn opt_bytes(s: &str, path: &str, field: &str, errs: &mut FieldErrors) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    quantity::parse_bytes(s)
        .map_err(|e| quantity_error(errs, join(path, field), s, e))
        .ok()
}

/// A port number, which the wire carries as `uint32`.
pub(crate) fn port(v: u32, path: &str, field: &str, errs: &mut FieldErrors) -> u16 {
    u16::try_from(v).unwrap_or_else(|_| {
        errs.push(
            join(path, field),
            format!("{v} is not a port (at most 65535)"),
        );
        0
    })
}

/// A wire enum value, or `None` (recorded as an error) when this version does not know it.
pub(crate) fn enum_value<E: TryFrom<i32>>(
    v: i32,
    path: &str,
    field: &str,
    errs: &mut FieldErrors,
) -> Option<E> {
    E::try_from(v)
        .map_err(|_| errs.push(join(path, field), format!("unknown enum value {v}")))
        .ok()
}

/// Empty strings become `default`.
pub(crate) fn or_default(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s.to_string()
    }
}

/// Implements `TryFrom<P>` and `TryFrom<&P>` for a root domain type, and `From<D>` for the wire
/// type next to the `From<&D>` each module writes.
macro_rules! root_conversions {
    ($domain:ty, $proto:ty) => {
        impl TryFrom<&$proto> for $domain {
            type Error = $crate::error::Error;

            fn try_from(p: &$proto) -> Result<Self, Self::Error> {
                $crate::convert::decode(p)
            }
        }

        impl TryFrom<$proto> for $domain {
            type Error = $crate::error::Error;

            fn try_from(p: $proto) -> Result<Self, Self::Error> {
                $crate::convert::decode(&p)
            }
        }

        impl From<$domain> for $proto {
            fn from(d: $domain) -> Self {
                Self::from(&d)
            }
        }
    };
}
pub(crate) use root_conversions;
