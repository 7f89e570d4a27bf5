//! Object names, namespaces, labels and annotations.

use super::names::{dns1123_label, dns1123_subdomain, label_key, label_value};
use crate::error::FieldErrors;
use crate::model::ObjectMeta;

/// Largest total size of an object's annotations (keys and values), as in Kubernetes.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Most labels on one object.
pub const MAX_LABELS: usize = 64;

/// How an object kind names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Name is a DNS-1123 label, namespace required (workloads, events).
    Namespaced,
    /// Name is a DNS-1123 label, namespace must be empty (queues).
    Cluster,
    /// Name is a DNS-1123 subdomain (host names), namespace must be empty (nodes).
    ClusterSubdomain,
}

/// Checks the user-set parts of `meta` under `path` (usually `meta`).
pub fn meta_errors(meta: &ObjectMeta, scope: Scope, path: &str, errs: &mut FieldErrors) {
    let name_check = match scope {
        Scope::ClusterSubdomain => dns1123_subdomain(&meta.name),
        _ => dns1123_label(&meta.name),
    };
    if let Err(e) = name_check {
        errs.push(format!("{path}.name"), e);
    }
    match scope {
        Scope::Namespaced => {
            if let Err(e) = dns1123_label(&meta.namespace) {
                errs.push(format!("{path}.namespace"), e);
            }
        }
        Scope::Cluster | Scope::ClusterSubdomain => {
            if !meta.namespace.is_empty() {
                errs.push(
                    format!("{path}.namespace"),
                    "must be empty: this kind is cluster-scoped",
                );
            }
        }
    }
    super::check_len(
        errs,
        &format!("{path}.labels"),
        "labels",
        meta.labels.len(),
        MAX_LABELS,
    );
    for (k, v) in &meta.labels {
        if let Err(e) = label_key(k) {
            errs.push(format!("{path}.labels"), e);
        }
        if let Err(e) = label_value(v) {
            errs.push(format!("{path}.labels[{k}]"), e);
        }
    }
    let mut annotation_bytes = 0;
    for (k, v) in &meta.annotations {
        if let Err(e) = label_key(k) {
            errs.push(format!("{path}.annotations"), e);
        }
        annotation_bytes += k.len() + v.len();
    }
    if annotation_bytes > MAX_ANNOTATIONS_BYTES {
        errs.push(
            format!("{path}.annotations"),
            format!("total size {annotation_bytes} bytes exceeds {MAX_ANNOTATIONS_BYTES}"),
        );
    }
}
