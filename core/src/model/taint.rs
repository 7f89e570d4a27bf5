//! Taints repel work from nodes; tolerations let work through.

use serde::{Deserialize, Serialize};

use super::time::UnixMillis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New replicas are not placed on the node.
    #[default]
    NoSchedule,
    /// The node is avoided unless nothing else fits.
    PreferNoSchedule,
    /// Replicas already there are evicted too.
    NoExecute,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
    pub added: UnixMillis,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Toleration {
    /// Empty with `Exists` tolerates every taint.
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    /// `None` matches every effect.
    pub effect: Option<TaintEffect>,
    /// With `NoExecute`: how long a replica may stay after the taint appears; `None` = forever.
    pub toleration_seconds: Option<u64>,
}

impl Toleration {
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => self.key.is_empty() || self.key == taint.key,
            TolerationOperator::Equal => self.key == taint.key && self.value == taint.value,
        }
    }
}

/// Whether every taint with one of `effects` is tolerated.
pub fn tolerates_all(
    tolerations: &[Toleration],
    taints: &[Taint],
    effects: &[TaintEffect],
) -> bool {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect))
        .all(|t| tolerations.iter().any(|tol| tol.tolerates(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_matching() {
        let taint = Taint {
            key: "gpu".into(),
            value: "reserved".into(),
            effect: TaintEffect::NoSchedule,
            added: UnixMillis(0),
        };
        let equal = Toleration {
            key: "gpu".into(),
            value: "reserved".into(),
            ..Toleration::default()
        };
        assert!(equal.tolerates(&taint));
        let wrong_value = Toleration {
            value: "x".into(),
            ..equal.clone()
        };
        assert!(!wrong_value.tolerates(&taint));
        let wrong_effect = Toleration {
            effect: Some(TaintEffect::NoExecute),
            ..equal.clone()
        };
        assert!(!wrong_effect.tolerates(&taint));
        let any = Toleration {
            operator: TolerationOperator::Exists,
            ..Toleration::default()
        };
        assert!(any.tolerates(&taint));
        let taints = [taint];
        assert!(tolerates_all(&[any], &taints, &[TaintEffect::NoSchedule]));
        assert!(!tolerates_all(&[], &taints, &[TaintEffect::NoSchedule]));
        assert!(tolerates_all(&[], &taints, &[TaintEffect::NoExecute]));
    }
}
