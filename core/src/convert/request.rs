//! What the API server calls on a create or update request: convert, apply defaults and
//! validate, reporting conversion and validation problems together.

use uni_proto::v1 as pb;

use super::FromProto;
use crate::error::{Error, FieldErrors};
use crate::model::{Queue, RoleBinding, Workload};
use crate::validate::{queue_errors, role_binding_errors, workload_errors};

/// The workload of a create or update request, defaulted and validated. Server-owned fields
/// (status, uid, generation, timestamps) are left as sent; the server overwrites them.
pub fn workload_from_request(p: &pb::Workload) -> Result<Workload, Error> {
    checked(p, workload_errors)
}

/// The queue of a create or update request, defaulted and validated.
pub fn queue_from_request(p: &pb::Queue) -> Result<Queue, Error> {
    checked(p, queue_errors)
}

/// The role binding of a create request, validated.
pub fn role_binding_from_request(p: &pb::RoleBinding) -> Result<RoleBinding, Error> {
    checked(p, role_binding_errors)
}

fn checked<P, D: FromProto<P>>(p: &P, check: fn(&D, &mut FieldErrors)) -> Result<D, Error> {
    let mut errs = FieldErrors::default();
    let value = D::from_proto(p, "", &mut errs);
    let mut semantic = FieldErrors::default();
    check(&value, &mut semantic);
    // A field that failed to convert holds a placeholder; judging it again would only repeat
    // the first complaint.
    for e in semantic.0 {
        let repeated = errs.0.iter().any(|c| is_within(&e.path, &c.path));
        if !repeated {
            errs.0.push(e);
        }
    }
    errs.into_result().map(|()| value)
}

/// `path` is `prefix` or lies under it (`a.b` under `a`, `a[0].b` under `a[0]`).
fn is_within(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within() {
        assert!(is_within("spec.template", "spec"));
        assert!(is_within("spec", "spec"));
        assert!(is_within("spec.env[0].name", "spec.env[0]"));
        assert!(!is_within("spectrum", "spec"));
    }
}
