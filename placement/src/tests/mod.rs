//! Engine tests over whole snapshots, without etcd.

mod engine;
mod fixtures;
mod gang;
mod index_props;
mod quality;
mod speed;
