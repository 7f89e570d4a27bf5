//! Kubernetes operator for Universal: InferenceService, TrainingJob and Queue resources
//! (`universal.dev/v1alpha1`) are mirrored into Universal through its gRPC API, and their
//! status flows back.
//!
//! The reconcile is a plain function over a pure decision core ([`reconcile::decide`]);
//! status, conditions and events are pure functions too, unit-tested without a cluster.

pub mod cli;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod error;
pub mod labels;
pub mod leader;
pub mod operator;
pub mod reconcile;
pub mod trigger;
pub mod universal;

pub use error::{Error, Result};
