//! Taints repel requests that do not tolerate them. `PreferNoSchedule` is a preference, not a
//! filter.

use uni_core::model::taint::tolerates_all;
use uni_core::model::TaintEffect;

use super::Reason;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;

const HARD: [TaintEffect; 2] = [TaintEffect::NoSchedule, TaintEffect::NoExecute];

pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    if node.taints.is_empty() || tolerates_all(&req.tolerations, &node.taints, &HARD) {
        Ok(())
    } else {
        Err("untolerated taint")
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{Taint, Toleration};

    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn hard_taints_need_a_toleration() {
        let mut n = NodeState::new("n", 1, 1);
        let mut req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 1, 1);
        n.taints.push(Taint {
            key: "gpu".into(),
            value: "only".into(),
            effect: TaintEffect::PreferNoSchedule,
            ..Taint::default()
        });
        assert_eq!(check(&n, &req), Ok(()));
        n.taints.push(Taint {
            key: "gpu".into(),
            value: "only".into(),
            ..Taint::default()
        });
        assert_eq!(check(&n, &req), Err("untolerated taint"));
        req.tolerations.push(Toleration {
            key: "gpu".into(),
            value: "only".into(),
            ..Toleration::default()
        });
        assert_eq!(check(&n, &req), Ok(()));
    }
}
