//! Validation of domain objects. Every problem is reported at once, each under its field path
//! (`spec.workers.min: must be <= spec.workers.max (2)`), as one
//! [`Error::Invalid`](crate::Error::Invalid).
//!
//! Conversion from the wire already applied defaults and rejected what cannot be represented
//! (bad quantities, unknown enum values); what is checked here is whether the values make sense.

pub mod names;

mod access;
mod meta;
mod node;
mod queue;
mod template;
mod workload;

pub use access::{role_binding_errors, validate_role_binding, MAX_BINDING_SUBJECTS};
pub use meta::{meta_errors, Scope, MAX_ANNOTATIONS_BYTES, MAX_LABELS};
pub use node::{node_errors, validate_node};
pub use queue::{queue_errors, validate_queue, validate_queue_in_tree, MAX_QUEUE_DEPTH};
pub use template::{
    MAX_ARGS, MAX_ARGS_BYTES, MAX_ENV, MAX_ENV_BYTES, MAX_PATH_BYTES, MAX_TOLERATIONS, RESERVED_ENV,
};
pub use workload::{validate_workload, validate_workload_update, workload_errors};

/// Most replicas (or workers) one workload may ask for.
pub const MAX_REPLICAS: u32 = 10_000;
/// Most accelerator devices one replica may span.
pub const MAX_DEVICES_PER_REPLICA: u32 = 64;
/// Longest grace period, backoff or delay in seconds (one day).
pub const MAX_SECONDS: u32 = 86_400;

use crate::error::FieldErrors;

/// Reports `path: must be <= other_path (other)` unless `value <= other`.
pub(crate) fn check_le<T: PartialOrd + std::fmt::Display>(
    errs: &mut FieldErrors,
    path: &str,
    value: T,
    other_path: &str,
    other: T,
) {
    if value > other {
        errs.push(path, format!("must be <= {other_path} ({other})"));
    }
}

/// Reports `path: at most max what, got n` when a list is too long.
pub(crate) fn check_len(errs: &mut FieldErrors, path: &str, what: &str, n: usize, max: usize) {
    if n > max {
        errs.push(path, format!("at most {max} {what} allowed, got {n}"));
    }
}

/// Reports `path: what take n bytes, more than max` when text is too large.
pub(crate) fn check_bytes(errs: &mut FieldErrors, path: &str, what: &str, n: usize, max: usize) {
    if n > max {
        errs.push(
            path,
            format!("{what} take {n} bytes, more than the {max} allowed"),
        );
    }
}

/// Most entries in a list of names (device models, node classes).
pub const MAX_NAMES: usize = 64;

/// Reports `path: must be between lo and hi` unless `lo <= value <= hi`.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    errs: &mut FieldErrors,
    path: &str,
    value: T,
    lo: T,
    hi: T,
) {
    if value < lo || value > hi {
        errs.push(path, format!("must be between {lo} and {hi}, got {value}"));
    }
}

/// Non-empty, distinct entries, none of which is also in `other` (an allowed list against its
/// forbidden list).
pub(crate) fn check_name_lists(
    errs: &mut FieldErrors,
    path: &str,
    allowed_field: &str,
    allowed: &[String],
    forbidden_field: &str,
    forbidden: &[String],
) {
    for (field, items) in [(allowed_field, allowed), (forbidden_field, forbidden)] {
        check_len(
            errs,
            &format!("{path}.{field}"),
            "names",
            items.len(),
            MAX_NAMES,
        );
        for (i, item) in items.iter().enumerate() {
            if item.trim().is_empty() {
                errs.push(format!("{path}.{field}[{i}]"), "must not be empty");
            } else if items[..i].contains(item) {
                errs.push(
                    format!("{path}.{field}[{i}]"),
                    format!("duplicate {item:?}"),
                );
            }
        }
    }
    for (i, item) in forbidden.iter().enumerate() {
        if !item.is_empty() && allowed.contains(item) {
            errs.push(
                format!("{path}.{forbidden_field}[{i}]"),
                format!("{item:?} is also in {allowed_field}"),
            );
        }
    }
}
