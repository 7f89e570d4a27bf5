//! Events: what happened to objects, for people.

use serde::{Deserialize, Serialize};

use super::meta::{ObjectMeta, ObjectRef};
use super::time::UnixMillis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[default]
    Normal,
    Warning,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSource {
    /// "scheduler", "agent", "operator".
    pub component: String,
    /// The reporting agent's node; empty for control-plane components.
    pub node: String,
}

/// Repeats of the same (object, reason, message) fold into one event with a count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Event {
    pub meta: ObjectMeta,
    pub involved: ObjectRef,
    pub event_type: EventType,
    /// CamelCase, e.g. "Scheduled", "Preempted".
    pub reason: String,
    pub message: String,
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    pub count: u32,
    pub source: EventSource,
}

impl Event {
    /// Whether `other` repeats this event (same object, type, reason and message).
    pub fn is_repeat_of(&self, other: &Event) -> bool {
        self.involved == other.involved
            && self.event_type == other.event_type
            && self.reason == other.reason
            && self.message == other.message
    }
}
