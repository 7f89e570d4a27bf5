//! Cost: the cheapest feasible shape wins (`prefer: speed` instead favours the fastest).

use uni_core::units::GIB;

use crate::node_state::NodeState;
use crate::request::ReplicaRequest;
use crate::shape::Shape;

/// Hourly price of `req` in `shape` on `node`: devices (shares pro rata) plus host compute and
/// memory at the node's prices.
pub fn usd_per_hour(node: &NodeState, shape: &Shape, req: &ReplicaRequest) -> f64 {
    shape.usd_per_hour
        + node.usd_per_ucu_hour * req.compute_milli as f64 / 1000.0
        + node.usd_per_gib_hour * req.memory_bytes as f64 / GIB as f64
}

/// 100 for the cheapest candidate, in proportion for dearer ones (twice the price: 50).
pub fn score(usd_per_hour: f64, cheapest: f64) -> f64 {
    if usd_per_hour <= 0.0 || !cheapest.is_finite() {
        100.0
    } else {
        (100.0 * cheapest.max(0.0) / usd_per_hour).clamp(0.0, 100.0)
    }
}

/// 100 for the fastest candidate, in proportion for slower ones.
pub fn speed_score(tflops: f64, fastest: f64) -> f64 {
    if fastest <= 0.0 {
        100.0
    } else {
        (100.0 * tflops / fastest).clamp(0.0, 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::WorkloadRef;

    #[test]
    fn price_adds_devices_compute_and_memory() {
        let mut node = NodeState::new("n", 8000, 64 * GIB);
        node.usd_per_ucu_hour = 0.04;
        node.usd_per_gib_hour = 0.005;
        let req = ReplicaRequest::new(WorkloadRef::new("ns", "w"), 2000, 4 * GIB);
        let shape = Shape {
            usd_per_hour: 1.0,
            ..Shape::CPU_ONLY
        };
        assert!((usd_per_hour(&node, &shape, &req) - 1.1).abs() < 1e-9);
    }

    #[test]
    fn relative_scores() {
        assert_eq!(score(2.0, 1.0), 50.0);
        assert_eq!(score(1.0, 1.0), 100.0);
        assert_eq!(score(0.0, 0.0), 100.0);
        assert_eq!(speed_score(300.0, 600.0), 50.0);
        assert_eq!(speed_score(0.0, 0.0), 100.0);
    }
}
