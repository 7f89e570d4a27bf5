//! Shared pieces: timestamps, object meta, conditions, taints, resource amounts.

use prost_types::Timestamp;
use uni_proto::v1 as pb;

use super::{enum_value, FromProto};
use crate::error::FieldErrors;
use crate::model::{
    Condition, ConditionStatus, ObjectMeta, ObjectRef, ResourceAmounts, Taint, TaintEffect,
    Toleration, TolerationOperator, UnixMillis,
};

/// `UnixMillis(0)` (unset) is no timestamp.
pub fn timestamp_to_proto(t: UnixMillis) -> Option<Timestamp> {
    t.is_set().then(|| millis_to_timestamp(t))
}

/// No timestamp is `UnixMillis(0)`. Sub-millisecond precision is dropped.
pub fn timestamp_from_proto(t: Option<&Timestamp>) -> UnixMillis {
    t.map_or(UnixMillis(0), timestamp_to_millis)
}

pub(crate) fn opt_timestamp_to_proto(t: Option<UnixMillis>) -> Option<Timestamp> {
    t.map(millis_to_timestamp)
}

pub(crate) fn opt_timestamp_from_proto(t: Option<&Timestamp>) -> Option<UnixMillis> {
    t.map(timestamp_to_millis)
}

fn millis_to_timestamp(t: UnixMillis) -> Timestamp {
    let nanos = t.0.rem_euclid(1000) * 1_000_000;
    Timestamp {
        seconds: t.0.div_euclid(1000),
        // Below 1e9, so it fits.
        nanos: i32::try_from(nanos).unwrap_or(0),
    }
}

fn timestamp_to_millis(t: &Timestamp) -> UnixMillis {
    let millis = t
        .seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos).div_euclid(1_000_000));
    UnixMillis(millis)
}

impl From<&ObjectMeta> for pb::ObjectMeta {
    fn from(m: &ObjectMeta) -> Self {
        Self {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            labels: m.labels.clone().into_iter().collect(),
            annotations: m.annotations.clone().into_iter().collect(),
            uid: m.uid.clone(),
            generation: m.generation,
            resource_version: m.resource_version,
            creation_time: timestamp_to_proto(m.created),
            deletion_time: opt_timestamp_to_proto(m.deleted),
        }
    }
}

impl FromProto<pb::ObjectMeta> for ObjectMeta {
    fn from_proto(p: &pb::ObjectMeta, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            labels: p.labels.clone().into_iter().collect(),
            annotations: p.annotations.clone().into_iter().collect(),
            uid: p.uid.clone(),
            generation: p.generation,
            resource_version: p.resource_version,
            created: timestamp_from_proto(p.creation_time.as_ref()),
            deleted: opt_timestamp_from_proto(p.deletion_time.as_ref()),
        }
    }
}

impl From<&ObjectRef> for pb::ObjectReference {
    fn from(r: &ObjectRef) -> Self {
        Self {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }
}

impl FromProto<pb::ObjectReference> for ObjectRef {
    fn from_proto(p: &pb::ObjectReference, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self {
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        }
    }
}

impl From<ConditionStatus> for pb::ConditionStatus {
    fn from(s: ConditionStatus) -> Self {
        match s {
            ConditionStatus::True => Self::True,
            ConditionStatus::False => Self::False,
            ConditionStatus::Unknown => Self::Unknown,
        }
    }
}

impl From<&Condition> for pb::Condition {
    fn from(c: &Condition) -> Self {
        Self {
            r#type: c.condition_type.clone(),
            status: pb::ConditionStatus::from(c.status).into(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: timestamp_to_proto(c.last_transition),
            observed_generation: c.observed_generation,
        }
    }
}

impl FromProto<pb::Condition> for Condition {
    fn from_proto(p: &pb::Condition, path: &str, errs: &mut FieldErrors) -> Self {
        let status = match enum_value(p.status, path, "status", errs) {
            Some(pb::ConditionStatus::True) => ConditionStatus::True,
            Some(pb::ConditionStatus::False) => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        };
        Self {
            condition_type: p.r#type.clone(),
            status,
            reason: p.reason.clone(),
            message: p.message.clone(),
            last_transition: timestamp_from_proto(p.last_transition_time.as_ref()),
            observed_generation: p.observed_generation,
        }
    }
}

impl From<TaintEffect> for pb::TaintEffect {
    fn from(e: TaintEffect) -> Self {
        match e {
            TaintEffect::NoSchedule => Self::NoSchedule,
            TaintEffect::PreferNoSchedule => Self::PreferNoSchedule,
            TaintEffect::NoExecute => Self::NoExecute,
        }
    }
}

/// `None` for UNSPECIFIED (and for unknown values, which are recorded as errors).
fn taint_effect(v: i32, path: &str, errs: &mut FieldErrors) -> Option<TaintEffect> {
    match enum_value(v, path, "effect", errs)? {
        pb::TaintEffect::Unspecified => None,
        pb::TaintEffect::NoSchedule => Some(TaintEffect::NoSchedule),
        pb::TaintEffect::PreferNoSchedule => Some(TaintEffect::PreferNoSchedule),
        pb::TaintEffect::NoExecute => Some(TaintEffect::NoExecute),
    }
}

impl From<&Taint> for pb::Taint {
    fn from(t: &Taint) -> Self {
        Self {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: pb::TaintEffect::from(t.effect).into(),
            time_added: timestamp_to_proto(t.added),
        }
    }
}

impl FromProto<pb::Taint> for Taint {
    fn from_proto(p: &pb::Taint, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            key: p.key.clone(),
            value: p.value.clone(),
            effect: taint_effect(p.effect, path, errs).unwrap_or_default(),
            added: timestamp_from_proto(p.time_added.as_ref()),
        }
    }
}

impl From<&Toleration> for pb::Toleration {
    fn from(t: &Toleration) -> Self {
        let operator = match t.operator {
            TolerationOperator::Equal => pb::TolerationOperator::Equal,
            TolerationOperator::Exists => pb::TolerationOperator::Exists,
        };
        Self {
            key: t.key.clone(),
            operator: operator.into(),
            value: t.value.clone(),
            effect: t
                .effect
                .map_or(pb::TaintEffect::Unspecified, pb::TaintEffect::from)
                .into(),
            toleration_seconds: t.toleration_seconds,
        }
    }
}

impl FromProto<pb::Toleration> for Toleration {
    fn from_proto(p: &pb::Toleration, path: &str, errs: &mut FieldErrors) -> Self {
        let operator = match enum_value(p.operator, path, "operator", errs) {
            Some(pb::TolerationOperator::Exists) => TolerationOperator::Exists,
            _ => TolerationOperator::Equal,
        };
        Self {
            key: p.key.clone(),
            operator,
            value: p.value.clone(),
            effect: taint_effect(p.effect, path, errs),
            toleration_seconds: p.toleration_seconds,
        }
    }
}

impl From<&ResourceAmounts> for pb::ResourceAmounts {
    fn from(a: &ResourceAmounts) -> Self {
        Self {
            compute_milli: a.compute_milli,
            memory_bytes: a.memory_bytes,
            device_milli: a.device_milli,
            device_memory_bytes: a.device_memory_bytes,
        }
    }
}

impl FromProto<pb::ResourceAmounts> for ResourceAmounts {
    fn from_proto(p: &pb::ResourceAmounts, _path: &str, _errs: &mut FieldErrors) -> Self {
        Self::from(p)
    }
}

impl From<&pb::ResourceAmounts> for ResourceAmounts {
    fn from(p: &pb::ResourceAmounts) -> Self {
        Self {
            compute_milli: p.compute_milli,
            memory_bytes: p.memory_bytes,
            device_milli: p.device_milli,
            device_memory_bytes: p.device_memory_bytes,
        }
    }
}

/// `Some(amounts)`: wire messages hold every amount as an optional message.
pub(crate) fn amounts(a: &ResourceAmounts) -> Option<pb::ResourceAmounts> {
    Some(a.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_negative() {
        for ms in [1, 999, 1_700_000_000_123, -1, -1001] {
            let t = timestamp_to_proto(UnixMillis(ms)).expect("set");
            assert!((0..1_000_000_000).contains(&t.nanos));
            assert_eq!(timestamp_from_proto(Some(&t)), UnixMillis(ms));
        }
        assert_eq!(timestamp_to_proto(UnixMillis(0)), None);
        assert_eq!(timestamp_from_proto(None), UnixMillis(0));
    }
}
