//! Gangs: every member reserved, or none.

use uni_core::model::Interconnect;

use super::fixtures::*;
use crate::policy::Policy;
use crate::select::place_gang;

fn node_states(s: &crate::snapshot::Snapshot) -> Vec<crate::node_state::NodeState> {
    let mut nodes: Vec<_> = s.nodes().cloned().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

#[test]
fn a_gang_that_fits_is_reserved_whole() {
    let mut s = snapshot([
        gpu_node("a", "nvidia-a100-80gb", 4, 96_000),
        gpu_node("b", "nvidia-a100-80gb", 4, 96_000),
    ]);
    let reqs = vec![whole(2, 2, 0, Interconnect::Any); 4];
    let placed = place_gang(&mut s, &reqs, &Policy::default(), &GENERIC, |i, d| {
        allocation(&format!("w{i}"), &reqs[i], d)
    })
    .expect("fits");
    assert_eq!(placed.len(), 4);
    assert_eq!(s.allocations().count(), 4);
    assert!(s.nodes().all(|n| n.whole_free_devices() == 0));
    s.check_consistency().expect("consistent");
}

#[test]
fn a_gang_that_cannot_fit_leaves_the_snapshot_unchanged() {
    let mut s = snapshot([
        gpu_node("a", "nvidia-a100-80gb", 4, 96_000),
        gpu_node("b", "nvidia-a100-80gb", 4, 96_000),
    ]);
    // Something already running, with the id the gang's first member will reuse: reserving
    // that member replaces it (freeing its device), and the rollback must restore it.
    let existing = commit(
        &mut s,
        &whole(1, 1, 0, Interconnect::Any),
        &Policy::default(),
        "g0",
    )
    .expect("fits");
    let before = node_states(&s);
    let reqs = vec![whole(4, 4, 0, Interconnect::Any); 3];
    let mut calls = 0;
    let why = place_gang(&mut s, &reqs, &Policy::default(), &GENERIC, |i, d| {
        calls += 1;
        allocation(&format!("g{i}"), &reqs[i], d)
    })
    .expect_err("two nodes of four devices cannot hold three members of four");
    assert_eq!(
        calls, 2,
        "two members were reserved before the third failed"
    );
    assert_eq!(why.to_string(), "0/2 nodes: 2 insufficient accelerators");
    assert_eq!(node_states(&s), before);
    assert_eq!(s.allocations().count(), 1);
    assert_eq!(
        s.allocation("g0").map(|a| a.node.clone()),
        Some(existing.node)
    );
    s.check_consistency().expect("consistent");
}
