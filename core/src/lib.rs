//! Universal's core: the domain model, universal units, the hardware catalog, validation and
//! the store layer shared by every component.

pub mod backoff;
pub mod catalog;
pub mod client;
pub mod convert;
pub mod error;
pub mod model;
pub mod quantity;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod units;
pub mod validate;

pub use backoff::Backoff;
pub use error::{Error, Result};
