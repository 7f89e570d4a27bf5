//! Spread: replicas of one workload prefer nodes holding fewer of them, so that losing a node
//! loses few replicas.

use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

/// 100 on a node without replicas of the workload, 50 with one, 33 with two, ...
pub fn score(node: &NodeState, req: &ReplicaRequest) -> f64 {
    let replicas = node.replicas.get(&req.workload).copied().unwrap_or(0);
    100.0 / (1.0 + f64::from(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn fewer_replicas_score_higher() {
        let w = WorkloadRef::new("ns", "w");
        let req = ReplicaRequest::new(w.clone(), 1, 1);
        let mut n = NodeState::new("n", 1, 1);
        assert_eq!(score(&n, &req), 100.0);
        n.replicas.insert(w, 1);
        assert_eq!(score(&n, &req), 50.0);
        n.replicas.insert(WorkloadRef::new("ns", "other"), 5);
        assert_eq!(score(&n, &req), 50.0);
    }
}
