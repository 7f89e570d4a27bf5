//! Queues: quotas must be consistent, alone and within the queue tree.

use std::collections::BTreeMap;

use super::check_range;
use super::meta::{meta_errors, Scope};
use super::names::dns1123_label;
use crate::error::{Error, FieldErrors};
use crate::model::{priority, Queue, Quota};
use crate::quantity::{format_bytes, format_milli};

/// Most weight one queue may have; keeps fair-share arithmetic small.
pub const MAX_WEIGHT: u32 = 1000;
/// Deepest queue tree (top-level queues are at depth 1).
pub const MAX_QUEUE_DEPTH: usize = 8;

pub fn validate_queue(q: &Queue) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    queue_errors(q, &mut errs);
    errs.into_result()
}

/// `q` alone, then as it would sit among `others` (every stored queue; a stored version of
/// `q` itself is ignored): its parent exists, the tree has no cycle and is not too deep, and
/// guarantees nest (a child's, and its siblings' together, within its parent's; its own
/// children's within its own).
pub fn validate_queue_in_tree(q: &Queue, others: &[Queue]) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    queue_errors(q, &mut errs);
    tree_errors(q, others, &mut errs);
    errs.into_result()
}

pub fn queue_errors(q: &Queue, errs: &mut FieldErrors) {
    meta_errors(&q.meta, Scope::Cluster, "meta", errs);
    let s = &q.spec;
    quota_le(
        errs,
        "spec.guaranteed",
        &s.guaranteed,
        "spec.max",
        &s.max,
        None,
    );
    quota_le(
        errs,
        "spec.lending_limit",
        &s.lending_limit,
        "spec.guaranteed",
        &s.guaranteed,
        Some(0),
    );
    if !s.parent.is_empty() {
        if let Err(e) = dns1123_label(&s.parent) {
            errs.push("spec.parent", e);
        } else if s.parent == q.meta.name {
            errs.push("spec.parent", "a queue cannot be its own parent");
        }
    }
    check_range(
        errs,
        "spec.priority",
        s.priority,
        priority::MIN,
        priority::MAX,
    );
    check_range(errs, "spec.weight", s.weight, 1, MAX_WEIGHT);
}

fn tree_errors(q: &Queue, others: &[Queue], errs: &mut FieldErrors) {
    let name = q.meta.name.as_str();
    let mut by_name: BTreeMap<&str, &Queue> = others
        .iter()
        .filter(|o| o.meta.name != name)
        .map(|o| (o.meta.name.as_str(), o))
        .collect();
    by_name.insert(name, q);
    if !q.spec.parent.is_empty() {
        match by_name.get(q.spec.parent.as_str()) {
            None => errs.push(
                "spec.parent",
                format!("queue {} does not exist", q.spec.parent),
            ),
            Some(parent) => {
                // Walk up from the parent: reaching this queue again is a cycle.
                let mut depth = 2;
                let mut at = *parent;
                while !at.spec.parent.is_empty() {
                    if at.spec.parent == name {
                        errs.push(
                            "spec.parent",
                            format!(
                                "{} is below {name} already: the tree would have a cycle",
                                q.spec.parent
                            ),
                        );
                        break;
                    }
                    depth += 1;
                    match by_name.get(at.spec.parent.as_str()) {
                        Some(next) if depth <= MAX_QUEUE_DEPTH => at = next,
                        Some(_) => {
                            errs.push(
                                "spec.parent",
                                format!("queue trees are at most {MAX_QUEUE_DEPTH} deep"),
                            );
                            break;
                        }
                        None => break,
                    }
                }
                let parent_path = format!("queue {}'s spec.guaranteed", parent.meta.name);
                let over = quota_le(
                    errs,
                    "spec.guaranteed",
                    &q.spec.guaranteed,
                    &parent_path,
                    &parent.spec.guaranteed,
                    Some(0),
                );
                if over {
                    return;
                }
                let siblings = by_name
                    .values()
                    .filter(|o| o.spec.parent == q.spec.parent)
                    .map(|o| o.spec.guaranteed);
                quota_le_as(
                    errs,
                    "spec.guaranteed",
                    &sum(siblings),
                    &parent.spec.guaranteed,
                    Some(0),
                    |field, value| {
                        format!(
                            "with its siblings' guarantees, must be <= {parent_path}.{field} \
                             ({value})"
                        )
                    },
                );
            }
        }
    }
    // Children's guarantees must fit in this one: checked the other way round.
    let children_sum = sum(by_name
        .values()
        .filter(|o| o.spec.parent == name)
        .map(|o| o.spec.guaranteed));
    let nonempty = children_sum.set().iter().any(|s| *s);
    if nonempty {
        quota_ge(errs, "spec.guaranteed", &q.spec.guaranteed, &children_sum);
    }
}

/// The sum of guarantees; an amount is set if any is.
fn sum(quotas: impl Iterator<Item = Quota>) -> Quota {
    fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    quotas.fold(Quota::default(), |acc, q| Quota {
        compute_milli: add(acc.compute_milli, q.compute_milli),
        memory_bytes: add(acc.memory_bytes, q.memory_bytes),
        devices: add(acc.devices, q.devices),
        device_memory_bytes: add(acc.device_memory_bytes, q.device_memory_bytes),
    })
}

/// One amount of a quota: its field, its value, and how it reads in a message.
type Amount = (&'static str, Option<u64>, fn(u64) -> String);

/// The amounts of a quota with how each reads in a message.
fn amounts(q: &Quota) -> [Amount; 4] {
    [
        ("compute", q.compute_milli, format_milli),
        ("memory", q.memory_bytes, format_bytes),
        ("devices", q.devices.map(u64::from), |n| n.to_string()),
        ("device_memory", q.device_memory_bytes, format_bytes),
    ]
}

/// Reports every amount set in `a` above the one in `b`; an amount unset in `b` reads as
/// `b_unset` (`None`: not compared). Compared in canonical quantity form so the message
/// reads like the request. Returns whether anything was reported.
fn quota_le(
    errs: &mut FieldErrors,
    a_path: &str,
    a: &Quota,
    b_path: &str,
    b: &Quota,
    b_unset: Option<u64>,
) -> bool {
    quota_le_as(errs, a_path, a, b, b_unset, |field, value| {
        format!("must be <= {b_path}.{field} ({value})")
    })
}

/// [`quota_le`] with the message made by `say(field, b's amount)`.
fn quota_le_as(
    errs: &mut FieldErrors,
    a_path: &str,
    a: &Quota,
    b: &Quota,
    b_unset: Option<u64>,
    say: impl Fn(&str, String) -> String,
) -> bool {
    let mut reported = false;
    for ((field, a, _), (_, b, fmt)) in amounts(a).into_iter().zip(amounts(b)) {
        let (Some(a), Some(b)) = (a, b.or(b_unset)) else {
            continue;
        };
        if a > b {
            errs.push(format!("{a_path}.{field}"), say(field, fmt(b)));
            reported = true;
        }
    }
    reported
}

/// Reports every amount of the children's guarantees `children` above this queue's `own`
/// (unset: none).
fn quota_ge(errs: &mut FieldErrors, path: &str, own: &Quota, children: &Quota) {
    for ((field, own, fmt), (_, child, _)) in amounts(own).into_iter().zip(amounts(children)) {
        let Some(child) = child else { continue };
        let own = own.unwrap_or(0);
        if child > own {
            errs.push(
                format!("{path}.{field}"),
                format!(
                    "must be >= its children's guarantees together ({})",
                    fmt(child)
                ),
            );
        }
    }
}
