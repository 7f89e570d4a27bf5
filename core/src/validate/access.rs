//! Role bindings: a known role, in a scope it may be bound in, to somebody.

use super::meta::{meta_errors, Scope};
use crate::error::{Error, FieldErrors};
use crate::model::{Role, RoleBinding};

/// Most users plus groups one binding may name.
pub const MAX_BINDING_SUBJECTS: usize = 256;

pub fn validate_role_binding(b: &RoleBinding) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    role_binding_errors(b, &mut errs);
    errs.into_result()
}

pub fn role_binding_errors(b: &RoleBinding, errs: &mut FieldErrors) {
    let scope = if b.cluster_wide() {
        Scope::Cluster
    } else {
        Scope::Namespaced
    };
    meta_errors(&b.meta, scope, "meta", errs);
    if b.role == Role::ClusterAdmin && !b.cluster_wide() {
        errs.push(
            "role",
            "cluster-admin can only be bound cluster-wide (empty namespace)",
        );
    }
    if b.users.is_empty() && b.groups.is_empty() {
        errs.push("users", "name at least one user or group");
    }
    if b.users.len() + b.groups.len() > MAX_BINDING_SUBJECTS {
        errs.push(
            "users",
            format!("at most {MAX_BINDING_SUBJECTS} users and groups together"),
        );
    }
    for (field, names) in [("users", &b.users), ("groups", &b.groups)] {
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || n.chars().any(char::is_control) {
                errs.push(
                    format!("{field}[{i}]"),
                    "must be a non-empty name without control characters",
                );
            }
        }
    }
}
