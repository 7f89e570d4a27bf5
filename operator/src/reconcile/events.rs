//! Which Kubernetes Events to publish: for the steps taken and for condition transitions.
//! Pure; the reconciler publishes what these return.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::decide::Step;
use crate::crd::status::condition;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    /// CamelCase, shown as Reason by `kubectl describe`.
    pub reason: String,
    /// What the operator did, CamelCase.
    pub action: &'static str,
    pub message: String,
}

impl Note {
    fn normal(reason: &str, action: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.into(),
            action,
            message: message.into(),
        }
    }

    fn warning(reason: &str, action: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, action, message)
        }
    }
}

/// The event for a step that changed something in Universal or Kubernetes. `what` names the
/// Universal object ("workload team-a/chat"); `mirrored_before` says whether the resource
/// had been mirrored already (so a create is a re-creation).
pub fn for_step(step: &Step, what: &str, mirrored_before: bool) -> Option<Note> {
    Some(match step {
        Step::Create if mirrored_before => Note::warning(
            "Recreated",
            "Create",
            format!("Universal {what} was missing; created it again"),
        ),
        Step::Create => Note::normal("Created", "Create", format!("created Universal {what}")),
        Step::Update { .. } => Note::normal(
            "Updated",
            "Update",
            format!("spec changed; updated Universal {what}"),
        ),
        Step::Scale { counts, .. } => {
            let desired = counts
                .desired
                .map_or_else(String::new, |d| format!("{d} wanted, "));
            Note::normal(
                "Scaled",
                "Scale",
                format!(
                    "scaled Universal {what}: {desired}min {}, max {}",
                    counts.min, counts.max
                ),
            )
        }
        Step::Delete { .. } => {
            Note::normal("Deleting", "Delete", format!("deleting Universal {what}"))
        }
        Step::RemoveFinalizer => Note::normal(
            "Deleted",
            "RemoveFinalizer",
            format!("Universal {what} is gone; releasing the resource"),
        ),
        _ => return None,
    })
}

/// Events for conditions that changed between the status written before and the new one.
pub fn for_transitions(previous: &[Condition], next: &[Condition]) -> Vec<Note> {
    let was = |t: &str| {
        previous
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.as_str())
    };
    let mut notes = Vec::new();
    for c in next {
        let before = was(&c.type_);
        let became_true = c.status == "True" && before != Some("True");
        let became_false = c.status == "False" && before == Some("True");
        match c.type_.as_str() {
            condition::SCHEDULED if became_true => {
                notes.push(Note::normal(&c.reason, "Schedule", c.message.clone()))
            }
            condition::READY if became_true => {
                notes.push(Note::normal(&c.reason, "Observe", c.message.clone()))
            }
            condition::READY if became_false => notes.push(Note::warning(
                "NotReady",
                "Observe",
                format!("{}: {}", c.reason, c.message),
            )),
            condition::FAILED if became_true => {
                notes.push(Note::warning(&c.reason, "Observe", c.message.clone()))
            }
            _ => {}
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Counts;

    fn cond(t: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn steps_name_what_they_did() {
        let what = "workload a/b";
        assert_eq!(
            for_step(&Step::Create, what, false).map(|n| n.reason),
            Some("Created".into())
        );
        let again = for_step(&Step::Create, what, true).expect("note");
        assert!(again.warning);
        assert_eq!(again.reason, "Recreated");
        let scaled = for_step(
            &Step::Scale {
                counts: Counts {
                    desired: Some(3),
                    min: 3,
                    max: 3,
                },
                expected: 1,
            },
            what,
            true,
        )
        .expect("note");
        assert!(scaled.message.contains("3 wanted"), "{}", scaled.message);
        assert_eq!(for_step(&Step::InSync, what, true), None);
    }

    #[test]
    fn only_transitions_make_events() {
        let before = vec![
            cond("Scheduled", "False", "Pending"),
            cond("Ready", "False", "Pending"),
        ];
        let after = vec![
            cond("Scheduled", "True", "Scheduled"),
            cond("Ready", "False", "Scheduled"),
        ];
        let notes = for_transitions(&before, &after);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].reason, "Scheduled");
        assert!(for_transitions(&after, &after).is_empty());
        let failed = vec![cond("Failed", "True", "BackoffLimitExceeded")];
        let notes = for_transitions(&[], &failed);
        assert!(notes[0].warning);
        let lost = vec![cond("Ready", "False", "Running")];
        let notes = for_transitions(&[cond("Ready", "True", "Ready")], &lost);
        assert_eq!(notes[0].reason, "NotReady");
    }
}
