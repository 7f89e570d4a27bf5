//! Nodes: names are host names; taints need valid keys.

use super::meta::{meta_errors, Scope};
use super::names::{label_key, label_value};
use crate::error::{Error, FieldErrors};
use crate::model::Node;

pub fn validate_node(n: &Node) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    node_errors(n, &mut errs);
    errs.into_result()
}

pub fn node_errors(n: &Node, errs: &mut FieldErrors) {
    meta_errors(&n.meta, Scope::ClusterSubdomain, "meta", errs);
    for (i, t) in n.spec.taints.iter().enumerate() {
        let at = format!("spec.taints[{i}]");
        if let Err(e) = label_key(&t.key) {
            errs.push(format!("{at}.key"), e);
        }
        if let Err(e) = label_value(&t.value) {
            errs.push(format!("{at}.value"), e);
        }
        let duplicate = n.spec.taints[..i]
            .iter()
            .any(|o| o.key == t.key && o.effect == t.effect);
        if duplicate {
            errs.push(
                at,
                format!("duplicate taint {:?} with the same effect", t.key),
            );
        }
    }
}
