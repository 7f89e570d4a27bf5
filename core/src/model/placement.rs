//! Where a workload's replicas may run, and what the scheduler optimizes for.

use serde::{Deserialize, Serialize};

use super::selector::Selector;
use super::taint::Toleration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// The cheapest placement that fits.
    #[default]
    Cost,
    /// The fastest hardware that fits.
    Speed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Placement {
    /// Over node labels; empty matches every node.
    pub node_selector: Selector,
    /// Catalog node classes; empty = every class.
    pub allowed_classes: Vec<String>,
    pub forbidden_classes: Vec<String>,
    pub tolerations: Vec<Toleration>,
    pub prefer: Preference,
}

impl Placement {
    /// Whether a node of `class` passes the allowed and forbidden lists.
    pub fn allows_class(&self, class: &str) -> bool {
        (self.allowed_classes.is_empty() || self.allowed_classes.iter().any(|c| c == class))
            && !self.forbidden_classes.iter().any(|c| c == class)
    }
}
