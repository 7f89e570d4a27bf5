//! Reconciliation: a pure decision core (`decide`, `status`, `events`, `conditions`) and the
//! reconcilers that carry its steps out against Kubernetes and Universal.

pub mod backoff;
pub mod conditions;
pub mod context;
pub mod decide;
pub mod events;
mod finalizer;
pub mod queue;
pub mod queue_status;
pub mod status;
pub mod workload;

pub use context::Context;
