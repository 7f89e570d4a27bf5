//! Role bindings.

use uni_proto::v1 as pb;

use super::{join, opt, root_conversions, FromProto};
use crate::error::FieldErrors;
use crate::model::{Role, RoleBinding};

impl From<&RoleBinding> for pb::RoleBinding {
    fn from(b: &RoleBinding) -> Self {
        Self {
            meta: Some((&b.meta).into()),
            role: b.role.as_str().to_string(),
            users: b.users.clone(),
            groups: b.groups.clone(),
        }
    }
}

impl FromProto<pb::RoleBinding> for RoleBinding {
    fn from_proto(p: &pb::RoleBinding, path: &str, errs: &mut FieldErrors) -> Self {
        let role = p.role.parse::<Role>().unwrap_or_else(|e| {
            errs.push(join(path, "role"), e);
            Role::View
        });
        Self {
            meta: opt(p.meta.as_ref(), path, "meta", errs),
            role,
            users: p.users.clone(),
            groups: p.groups.clone(),
        }
    }
}

root_conversions!(RoleBinding, pb::RoleBinding);
