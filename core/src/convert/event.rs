//! Events.

use uni_proto::v1 as pb;

use super::common::{timestamp_from_proto, timestamp_to_proto};
use super::{enum_value, opt, root_conversions, FromProto};
use crate::error::FieldErrors;
use crate::model::{Event, EventSource, EventType};

impl From<EventType> for pb::EventType {
    fn from(t: EventType) -> Self {
        match t {
            EventType::Normal => Self::Normal,
            EventType::Warning => Self::Warning,
        }
    }
}

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> Self {
        Self {
            meta: Some((&e.meta).into()),
            involved_object: Some((&e.involved).into()),
            r#type: pb::EventType::from(e.event_type).into(),
            reason: e.reason.clone(),
            message: e.message.clone(),
            first_time: timestamp_to_proto(e.first_seen),
            last_time: timestamp_to_proto(e.last_seen),
            count: e.count,
            source: Some(pb::EventSource {
                component: e.source.component.clone(),
                node: e.source.node.clone(),
            }),
        }
    }
}

impl FromProto<pb::Event> for Event {
    fn from_proto(p: &pb::Event, path: &str, errs: &mut FieldErrors) -> Self {
        let event_type = match enum_value(p.r#type, path, "type", errs) {
            Some(pb::EventType::Warning) => EventType::Warning,
            _ => EventType::Normal,
        };
        let source = p
            .source
            .as_ref()
            .map_or_else(EventSource::default, |s| EventSource {
                component: s.component.clone(),
                node: s.node.clone(),
            });
        Self {
            meta: opt(p.meta.as_ref(), path, "meta", errs),
            involved: opt(p.involved_object.as_ref(), path, "involved_object", errs),
            event_type,
            reason: p.reason.clone(),
            message: p.message.clone(),
            first_seen: timestamp_from_proto(p.first_time.as_ref()),
            last_seen: timestamp_from_proto(p.last_time.as_ref()),
            count: p.count,
            source,
        }
    }
}

root_conversions!(Event, pb::Event);

/// The `type` filter of event requests: `None` for both types.
pub fn event_type_filter(v: i32) -> Result<Option<EventType>, crate::error::Error> {
    match pb::EventType::try_from(v) {
        Ok(pb::EventType::Unspecified) => Ok(None),
        Ok(pb::EventType::Normal) => Ok(Some(EventType::Normal)),
        Ok(pb::EventType::Warning) => Ok(Some(EventType::Warning)),
        Err(_) => Err(crate::error::Error::invalid(
            "filter.type",
            format!("unknown enum value {v}"),
        )),
    }
}
