//! Kubernetes-style conditions: built fresh each reconcile, keeping lastTransitionTime when
//! a condition's status did not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One condition as computed; `status` is True or False.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Computed {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason_of(reason),
            message: message.into(),
        }
    }
}

/// A condition reason as the API server accepts it: CamelCase letters, digits, '_', ',' and
/// ':', starting with a letter. Anything else is dropped; nothing left gives "Unknown".
pub fn reason_of(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        .skip_while(|c| !c.is_ascii_alphabetic())
        .collect();
    let trimmed = cleaned.trim_end_matches([',', ':']);
    if trimmed.is_empty() {
        "Unknown".to_string()
    } else {
        trimmed.chars().take(1024).collect()
    }
}

/// The conditions to write: `computed` in order, each keeping its previous transition time
/// when its status is unchanged.
pub fn merge(
    previous: &[Condition],
    computed: Vec<Computed>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    computed
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason,
                message: c.message.chars().take(32768).collect(),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// Whether condition `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("timestamp"))
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let first = merge(
            &[],
            vec![Computed::new("Ready", false, "Pending", "")],
            Some(1),
            &at(10),
        );
        assert_eq!(first[0].last_transition_time, at(10));
        let same = merge(
            &first,
            vec![Computed::new("Ready", false, "Scheduled", "placed")],
            Some(2),
            &at(20),
        );
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            vec![Computed::new("Ready", true, "Ready", "")],
            Some(2),
            &at(30),
        );
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert!(is_true(&flipped, "Ready"));
    }

    #[test]
    fn reasons_are_made_acceptable() {
        assert_eq!(reason_of("Unschedulable"), "Unschedulable");
        assert_eq!(reason_of("no fit: 3 nodes"), "nofit:3nodes");
        assert_eq!(reason_of("42 things"), "things");
        assert_eq!(reason_of(""), "Unknown");
        assert_eq!(reason_of("Bad,"), "Bad");
    }
}
