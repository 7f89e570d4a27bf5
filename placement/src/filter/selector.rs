//! The request's label selector over node labels.

use super::Reason;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    match &req.selector {
        Some(s) if !s.matches(&node.labels) => Err("node selector mismatch"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::Selector;

    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn selector_matches_labels() {
        let mut n = NodeState::new("n", 1, 1);
        n.labels.insert("zone".into(), "a".into());
        let mut req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1, 1);
        assert_eq!(check(&n, &req), Ok(()));
        req.selector = Some(Selector::parse("zone in (a,b)").expect("selector"));
        assert_eq!(check(&n, &req), Ok(()));
        req.selector = Some(Selector::parse("zone=b").expect("selector"));
        assert_eq!(check(&n, &req), Err("node selector mismatch"));
    }
}
