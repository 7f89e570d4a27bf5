//! Filters: pure functions deciding whether a node can take a request at all. Each returns the
//! reason it refuses, counted in `Unschedulable`.

pub mod accelerator;
pub mod class;
pub mod host_reserve;
pub mod resources;
pub mod selector;
pub mod status;
pub mod taints;

use super::node_state::NodeState;
use super::request::ReplicaRequest;

/// Why a node cannot take a request, e.g. "insufficient compute".
pub type Reason = &'static str;

/// Every filter, in the order reasons are reported (the first failure counts).
pub fn check(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    status::check(node)?;
    admits(node, req)?;
    accelerator::capacity(node, req)
}

/// The filters the index cannot answer (constraints, host capacity, accelerator models);
/// the hot path runs these, then enumerates shapes.
pub fn admits(node: &NodeState, req: &ReplicaRequest) -> Result<(), Reason> {
    taints::check(node, req)?;
    selector::check(node, req)?;
    class::check(node, req)?;
    accelerator::models(node, req)?;
    resources::check(node, req)?;
    host_reserve::check(node, req)
}
