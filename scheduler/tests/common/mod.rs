//! A real API server over a real etcd, with the cache running, for the gRPC tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use uni_core::catalog::Catalog;
use uni_core::store::KvStore;
use uni_core::testing::EtcdServer;
use uni_proto::v1 as pb;
use uni_proto::v1::cluster_service_client::ClusterServiceClient;
use uni_proto::v1::event_service_client::EventServiceClient;
use uni_proto::v1::node_service_client::NodeServiceClient;
use uni_proto::v1::queue_service_client::QueueServiceClient;
use uni_proto::v1::workload_service_client::WorkloadServiceClient;
use uni_scheduler::api::ApiContext;
use uni_scheduler::auth::Auth;
use uni_scheduler::cache::Cache;
use uni_scheduler::server::serve;

/// Bound on every wait for something the test caused.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Api {
    pub etcd: EtcdServer,
    pub store: Arc<dyn KvStore>,
    pub cache: Arc<Cache>,
    pub channel: Channel,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Api {
    /// Starts etcd, the cache and the server on a free port; returns once the server answers
    /// its health check.
    pub async fn start() -> Self {
        let etcd = EtcdServer::start().await.expect("etcd starts");
        let store: Arc<dyn KvStore> = Arc::new(etcd.store().await.expect("connect to etcd"));
        let catalog = Arc::new(Catalog::builtin().expect("built-in catalog"));
        let cache = Cache::new(catalog.clone());
        let shutdown = CancellationToken::new();
        tokio::spawn(cache.clone().run(store.clone(), shutdown.clone()));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        // Open mode: these tests are about the API; tests/security.rs covers its protection.
        let ctx = ApiContext {
            auth: Arc::new(Auth::open(None)),
            store: store.clone(),
            cache: cache.clone(),
            catalog,
            limits: Default::default(),
            gateway_url: "http://gateway.test".into(),
        };
        let server = tokio::spawn(serve(listener, None, ctx, shutdown.clone()));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        Self {
            etcd,
            store,
            cache,
            channel,
            shutdown,
            server,
        }
    }

    pub fn workloads(&self) -> WorkloadServiceClient<Channel> {
        WorkloadServiceClient::new(self.channel.clone())
    }

    pub fn nodes(&self) -> NodeServiceClient<Channel> {
        NodeServiceClient::new(self.channel.clone())
    }

    pub fn queues(&self) -> QueueServiceClient<Channel> {
        QueueServiceClient::new(self.channel.clone())
    }

    pub fn cluster(&self) -> ClusterServiceClient<Channel> {
        ClusterServiceClient::new(self.channel.clone())
    }

    pub fn events(&self) -> EventServiceClient<Channel> {
        EventServiceClient::new(self.channel.clone())
    }

    /// Waits until the cache has applied every write made so far.
    pub async fn cache_synced(&self) {
        let revision = self.store.revision().await.expect("revision");
        assert!(
            self.cache.wait_for(revision, WAIT).await,
            "cache did not reach revision {revision}"
        );
    }

    /// Cancels the server and waits for it to drain and stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server stops cleanly");
    }
}

/// A valid inference service with one replica of 1 UCU and 1 GiB.
pub fn inference(namespace: &str, name: &str) -> pb::Workload {
    pb::Workload {
        meta: Some(pb::ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }),
        spec: Some(pb::workload::Spec::Inference(pb::InferenceServiceSpec {
            template: Some(template()),
            ..Default::default()
        })),
        status: None,
    }
}

/// A valid training job with one worker.
pub fn training(namespace: &str, name: &str) -> pb::Workload {
    pb::Workload {
        meta: Some(pb::ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }),
        spec: Some(pb::workload::Spec::Training(pb::TrainingJobSpec {
            template: Some(template()),
            ..Default::default()
        })),
        status: None,
    }
}

fn template() -> pb::ReplicaTemplate {
    pb::ReplicaTemplate {
        command: vec!["/usr/bin/serve".into()],
        resources: Some(pb::Resources {
            compute: "1".into(),
            memory: "1Gi".into(),
            accelerator: None,
        }),
        ..Default::default()
    }
}

pub fn with_labels(mut w: pb::Workload, labels: &[(&str, &str)]) -> pb::Workload {
    if let Some(meta) = w.meta.as_mut() {
        meta.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    w
}

pub fn meta(w: &pb::Workload) -> &pb::ObjectMeta {
    w.meta.as_ref().expect("meta")
}

pub fn inference_spec(w: &pb::Workload) -> &pb::InferenceServiceSpec {
    match &w.spec {
        Some(pb::workload::Spec::Inference(s)) => s,
        other => panic!("not an inference service: {other:?}"),
    }
}

pub fn phase(w: &pb::Workload) -> pb::WorkloadPhase {
    let status = w.status.as_ref().expect("status");
    pb::WorkloadPhase::try_from(status.phase).expect("known phase")
}
