//! The placement engine: which node (and which devices on it) a replica should run on.
//!
//! Pure and etcd-free: the scheduling loop feeds a [`snapshot::Snapshot`] from watches, asks
//! [`select::place`] (or [`select::place_gang`]) for decisions, reserves them in the snapshot and
//! commits them. Pipeline per request: walk the snapshot's index for nodes that can fit in the
//! request's primary dimension -> filters (`filter/`) -> candidate shapes per node (`shape`) ->
//! score plugins (`score/`, each 0..100, weighted by the [`select::Policy`]) -> best candidate.
//! Only when nothing fits does a full scan run, to explain why in the `Unschedulable` counts.

mod capability;
pub mod filter;
mod index;
pub mod learn;
pub mod mix;
mod node_state;
mod policy;
pub mod request;
pub mod score;
pub mod select;
pub mod shape;
pub mod snapshot;
mod unschedulable;

#[cfg(test)]
mod tests;
