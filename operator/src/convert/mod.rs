//! Custom resources to Universal wire types (the operator is a client of the public API).

mod counts;
mod fingerprint;
mod queue;
mod template;
mod workload;

pub use counts::Counts;
pub use fingerprint::Fingerprint;
pub use queue::desired_queue;
pub use workload::{desired, host_identity_field, Desired, WorkloadResource};
