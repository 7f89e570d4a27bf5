//! The gRPC API that every scheduler replica serves, one file per service. Reads and writes
//! work on followers too: they go to the store (or the watch-fed cache), and only scheduling
//! is leader-only.

mod access;
mod args;
mod cluster;
mod create_batch;
mod events;
mod gateway;
mod logs;
mod nodes;
mod object;
mod paging;
mod queues;
mod status_view;
mod watch;
mod workloads;

use std::sync::Arc;

use uni_core::catalog::Catalog;
use uni_core::store::KvStore;

use crate::auth::Auth;
use crate::cache::Cache;

pub use access::AccessApi;
pub use cluster::ClusterApi;
pub use events::EventApi;
pub use gateway::{GatewayApi, NODE_CERT_VALIDITY};
pub use logs::LogApi;
pub use nodes::NodeApi;
pub use queues::{ensure_default_queue, QueueApi};
pub use status_view::{allocation_cost, overlay_status, set_endpoint};
pub use watch::ApiLimits;
pub use workloads::WorkloadApi;

/// What every service needs: the store for consistent reads and all writes, the cache for
/// derived views (replicas, nodes, summaries), the hardware catalog for prices, and who may
/// call.
#[derive(Clone)]
pub struct ApiContext {
    pub auth: Arc<Auth>,
    pub store: Arc<dyn KvStore>,
    pub cache: Arc<Cache>,
    pub catalog: Arc<Catalog>,
    pub limits: Arc<ApiLimits>,
    /// Where clients reach the inference gateway; services' endpoints are under it.
    pub gateway_url: Arc<str>,
}
