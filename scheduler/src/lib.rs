//! The Universal control plane: API, admission, queue, placement, node lifecycle.

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod control_plane;
pub mod error;
pub mod gateway;
pub mod init;
pub mod leader;
pub mod metrics;
pub mod schedule;
pub mod server;
