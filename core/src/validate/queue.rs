//! Queues: quotas must be consistent.

use super::check_range;
use super::meta::{meta_errors, Scope};
use crate::error::{Error, FieldErrors};
use crate::model::{priority, Queue};
use crate::quantity::{format_bytes, format_milli};

/// Most weight one queue may have; keeps fair-share arithmetic small.
pub const MAX_WEIGHT: u32 = 1000;

pub fn validate_queue(q: &Queue) -> Result<(), Error> {
    let mut errs = FieldErrors::default();
    queue_errors(q, &mut errs);
    errs.into_result()
}

pub fn queue_errors(q: &Queue, errs: &mut FieldErrors) {
    meta_errors(&q.meta, Scope::Cluster, "meta", errs);
    let (g, m) = (&q.spec.guaranteed, &q.spec.max);
    // Compared in canonical quantity form so the message reads like the request.
    let pairs = [
        (
            "compute",
            g.compute_milli
                .zip(m.compute_milli)
                .map(|(a, b)| (a, b, format_milli(b))),
        ),
        (
            "memory",
            g.memory_bytes
                .zip(m.memory_bytes)
                .map(|(a, b)| (a, b, format_bytes(b))),
        ),
        (
            "devices",
            g.devices
                .zip(m.devices)
                .map(|(a, b)| (u64::from(a), u64::from(b), b.to_string())),
        ),
        (
            "device_memory",
            g.device_memory_bytes
                .zip(m.device_memory_bytes)
                .map(|(a, b)| (a, b, format_bytes(b))),
        ),
    ];
    for (field, (guaranteed, max, max_text)) in pairs
        .into_iter()
        .filter_map(|(field, pair)| pair.map(|p| (field, p)))
    {
        if guaranteed > max {
            errs.push(
                format!("spec.guaranteed.{field}"),
                format!("must be <= spec.max.{field} ({max_text})"),
            );
        }
    }
    check_range(
        errs,
        "spec.priority",
        q.spec.priority,
        priority::MIN,
        priority::MAX,
    );
    check_range(errs, "spec.weight", q.spec.weight, 1, MAX_WEIGHT);
}
