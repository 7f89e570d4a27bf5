//! Host compute and memory.

use super::Reason;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    if req.compute_milli > node.free_compute_milli() {
        Err("insufficient compute")
    } else if req.memory_bytes > node.free_memory_bytes() {
        Err("insufficient memory")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn compute_then_memory() {
        let mut n = NodeState::new("n", 4000, 100);
        let w = WorkloadRef::new("ns", "w");
        assert_eq!(
            check(&n, &ReplicaRequest::new(w.clone(), 4000, 100)),
            Ok(())
        );
        n.used_compute_milli = 1;
        assert_eq!(
            check(&n, &ReplicaRequest::new(w.clone(), 4000, 100)),
            Err("insufficient compute")
        );
        assert_eq!(
            check(&n, &ReplicaRequest::new(w, 1000, 101)),
            Err("insufficient memory")
        );
    }
}
