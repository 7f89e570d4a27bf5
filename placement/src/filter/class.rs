//! Allowed and forbidden node classes.

use super::Reason;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    if req.allows_class(&node.class) {
        Ok(())
    } else {
        Err("class not allowed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn allowed_and_forbidden_classes() {
        let n = NodeState::new("n", 1, 1);
        let mut req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1, 1);
        assert_eq!(check(&n, &req), Ok(()));
        req.allowed_classes = vec!["gpu".into()];
        assert_eq!(check(&n, &req), Err("class not allowed"));
        req.allowed_classes.push("cpu".into());
        assert_eq!(check(&n, &req), Ok(()));
        req.forbidden_classes = vec!["cpu".into()];
        assert_eq!(check(&n, &req), Err("class not allowed"));
    }
}
