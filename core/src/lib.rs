//! Universal's core: the domain model, universal units, the hardware catalog, validation and
//! the store layer shared by every component.

pub mod error;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
