//! Leader election: only the replica holding the Lease runs the controllers, so two operator
//! replicas never act on the same resource at once.

pub mod decide;
mod lease;

pub use decide::Timings;
pub use lease::Elector;
