//! Why a request fits nowhere: one reason per node, counted.

use std::collections::BTreeMap;
use std::fmt;

/// `0/120 nodes: 80 insufficient accelerator memory, 40 cordoned`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unschedulable {
    /// Nodes in the snapshot.
    pub nodes: usize,
    /// Nodes refusing for each reason (the first filter each failed).
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes", self.nodes)?;
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        // Most frequent first; ties by name (the map's order, kept by the stable sort).
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        for (i, (reason, count)) in reasons.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{count} {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_most_frequent_first() {
        let u = Unschedulable {
            nodes: 120,
            reasons: [
                ("cordoned".to_string(), 40),
                ("insufficient accelerator memory".to_string(), 80),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            u.to_string(),
            "0/120 nodes: 80 insufficient accelerator memory, 40 cordoned"
        );
        assert_eq!(Unschedulable::default().to_string(), "0/0 nodes");
    }
}
