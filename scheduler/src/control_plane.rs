//! One control-plane replica: the watch-fed cache, the gRPC API, `/metrics`, and the leader
//! loop, over any store. `uni-scheduler` runs one on etcd; dev mode runs one on the embedded
//! store; tests run them in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uni_core::catalog::Catalog;
use uni_core::store::KvStore;

use crate::api::{ApiContext, ApiLimits};
use crate::auth::setup::secure;
use crate::cache::Cache;
use crate::config::Config;
use crate::gateway::{self, Gateway};
use crate::leader::{self, LeaderConfig};
use crate::metrics::{self, Metrics};
use crate::schedule::PlanConfig;
use crate::server;

pub struct ControlPlane {
    pub api_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl ControlPlane {
    /// Binds the listeners and starts every task.
    pub async fn start(
        store: Arc<dyn KvStore>,
        catalog: Arc<Catalog>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let api = TcpListener::bind(config.listen).await?;
        let metrics_listener = TcpListener::bind(config.metrics_listen).await?;
        let api_addr = api.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let gateway_listener = TcpListener::bind(config.gateway_listen).await?;
        let gateway_addr = gateway_listener.local_addr()?;
        let metrics = Metrics::new()?;
        let cache = Cache::new(catalog.clone());
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let secured = secure(
            &config.security,
            &[api_addr, metrics_addr, gateway_addr],
            store.clone(),
            &cancel,
        )
        .await?;
        for task in secured.tasks {
            tasks.spawn(task);
        }

        tasks.spawn(cache.clone().run(store.clone(), cancel.child_token()));
        let gw = Gateway::new(cache.clone(), secured.auth.clone(), metrics.gateway.clone());
        tasks.spawn(gateway::publish::run(
            store.clone(),
            config.identity.clone(),
            gw.clone(),
            metrics.is_leader.clone(),
            cancel.child_token(),
        ));
        let (gateway_tls, gateway_cancel) = (secured.tls.clone(), cancel.child_token());
        tasks.spawn(async move {
            if let Err(e) = gateway::serve(gateway_listener, gateway_tls, gw, gateway_cancel).await
            {
                tracing::error!(error = %e, "gateway failed");
            }
        });
        let gateway_url = match config.gateway_url.as_str() {
            "" => advertised(gateway_addr, secured.tls.is_some()),
            url => url.to_string(),
        };
        let ctx = ApiContext {
            gateway_url: gateway_url.into(),
            auth: secured.auth,
            store: store.clone(),
            cache: cache.clone(),
            catalog,
            limits: Arc::new(ApiLimits::new(config.max_watches)),
        };
        let api_cancel = cancel.child_token();
        let tls = secured.tls;
        tasks.spawn(async move {
            if let Err(e) = server::serve(api, tls, ctx, api_cancel).await {
                tracing::error!(error = %e, "API server failed");
            }
        });
        tasks.spawn(metrics::watch_store(
            store.clone(),
            metrics.clone(),
            Duration::from_secs(10),
            cancel.child_token(),
        ));
        let m = metrics.clone();
        let metrics_cancel = cancel.child_token();
        tasks.spawn(async move {
            if let Err(e) = metrics::serve(metrics_listener, m, metrics_cancel).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        let leader_config = LeaderConfig {
            identity: config.identity.clone(),
            lease_ttl: config.lease_ttl,
            plan: PlanConfig {
                node_grace: config.node_grace,
                event_ttl: config.event_ttl,
                finished_ttl: config.finished_ttl,
                starvation_after: config.starvation_after,
                elastic_window: Some(config.elastic_window),
                ..PlanConfig::default()
            },
            max_in_flight: config.max_commits_in_flight,
            compaction_interval: config.compaction_interval,
        };
        tasks.spawn(leader::run(
            store,
            cache.clone(),
            metrics.clone(),
            leader_config,
            cancel.child_token(),
        ));
        Ok(Self {
            api_addr,
            metrics_addr,
            gateway_addr,
            cache,
            metrics,
            cancel,
            tasks,
        })
    }

    /// Stops accepting requests, finishes the commits in flight, resigns, and waits for every
    /// task to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The gateway's URL when none is configured: its bound address, or this machine's name when
/// it listens on every interface.
fn advertised(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    format!("{scheme}://{host}:{}", addr.port())
}
