//! Nodes that may not receive new placements.

use super::Reason;
use crate::node_state::NodeState;

pub fn check(node: &NodeState) -> Result<(), Reason> {
    if !node.ready {
        Err("not ready")
    } else if node.cordoned {
        Err("cordoned")
    } else if node.draining {
        Err("draining")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unready_cordoned_and_draining_nodes() {
        let mut n = NodeState::new("n", 1, 1);
        assert_eq!(check(&n), Ok(()));
        n.draining = true;
        assert_eq!(check(&n), Err("draining"));
        n.cordoned = true;
        assert_eq!(check(&n), Err("cordoned"));
        n.ready = false;
        assert_eq!(check(&n), Err("not ready"));
    }
}
