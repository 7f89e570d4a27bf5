//! The placement engine: which node (and which devices on it) a replica should run on.
//!
//! Pure and etcd-free: the scheduling loop feeds a [`Snapshot`] from watches, asks [`place`] (or
//! [`place_gang`]) for decisions under a fixed [`Policy`] and the [`Mix`] learned from what the
//! cluster runs ([`learn::MixLearner`]), reserves them in the snapshot and commits them.
//! Pipeline per request: walk the snapshot's index for nodes that can fit in the request's
//! primary dimension -> filters (`filter/`) -> candidate shapes per node (`shape`) -> score
//! plugins (`score/`, each 0..100, weighted by the policy) -> best candidate. Only when nothing
//! fits does a full scan run, to explain why in the [`Unschedulable`] counts.
//!
//! `tenancy` (pure as well) decides what queues may take: guarantees, borrowing, fair order
//! and preemption victims.
//!
//! Layers, each using only those before it: `request`, `node_state` -> `shape`, `typical` ->
//! `mix` -> `score`, `filter` -> `index`, `capability` -> `snapshot` -> `select`, `learn`.

mod capability;
pub mod filter;
mod index;
pub mod learn;
pub mod mix;
pub mod node_state;
pub mod policy;
pub mod request;
pub mod score;
pub mod select;
pub mod shape;
pub mod snapshot;
pub mod tenancy;
pub mod typical;
pub mod unschedulable;

pub use mix::Mix;
pub use policy::Policy;
pub use request::ReplicaRequest;
pub use select::{place, place_gang, Decision, Reserved};
pub use snapshot::Snapshot;
pub use unschedulable::Unschedulable;

#[cfg(test)]
mod tests;
