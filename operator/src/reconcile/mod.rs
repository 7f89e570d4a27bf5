//! Reconciliation: a pure decision core (`decide`, `refusal`, `status`, `events`,
//! `conditions`), the step driver that carries its steps out against Kubernetes and
//! Universal, and what each mirrored kind (`workload`, `queue`) brings to the driver.

pub mod backoff;
pub mod conditions;
pub mod context;
pub mod decide;
mod driver;
pub mod events;
mod finalizer;
pub mod queue;
pub mod queue_status;
pub mod refusal;
pub mod status;
pub mod workload;

pub use context::Context;
