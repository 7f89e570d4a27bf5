//! Kubernetes-style conditions: one observed aspect of an object's state each.

use serde::{Deserialize, Serialize};

use super::time::UnixMillis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Condition {
    /// CamelCase, e.g. "Ready", "Unschedulable".
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub last_transition: UnixMillis,
    pub observed_generation: i64,
}

/// Well-known condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const SCHEDULED: &str = "Scheduled";
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const PROGRESSING: &str = "Progressing";
}

impl Condition {
    pub fn new(
        condition_type: impl Into<String>,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            condition_type: condition_type.into(),
            status,
            reason: reason.into(),
            message: message.into(),
            ..Self::default()
        }
    }
}

pub fn find_condition<'a>(
    conditions: &'a [Condition],
    condition_type: &str,
) -> Option<&'a Condition> {
    conditions
        .iter()
        .find(|c| c.condition_type == condition_type)
}

/// Adds or replaces the condition of `new`'s type. `last_transition` moves to `now` only when
/// the status changes, so it records when the state flipped rather than when it was last seen.
/// Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: UnixMillis) -> bool {
    match conditions
        .iter_mut()
        .find(|c| c.condition_type == new.condition_type)
    {
        Some(old) => {
            new.last_transition = if old.status == new.status {
                old.last_transition
            } else {
                now
            };
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            new.last_transition = now;
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = Vec::new();
        let ready = |s| Condition::new(types::READY, s, "R", "");
        assert!(set_condition(
            &mut cs,
            ready(ConditionStatus::False),
            UnixMillis(1)
        ));
        assert!(!set_condition(
            &mut cs,
            ready(ConditionStatus::False),
            UnixMillis(2)
        ));
        assert_eq!(cs[0].last_transition, UnixMillis(1));
        assert!(set_condition(
            &mut cs,
            ready(ConditionStatus::True),
            UnixMillis(3)
        ));
        assert_eq!(cs[0].last_transition, UnixMillis(3));
        assert_eq!(cs.len(), 1);
        assert!(find_condition(&cs, types::READY).is_some());
    }
}
