//! The operator's client of the Universal gRPC API: workloads and queues, with "not found"
//! as `None` and an optional bearer token on every call.

use std::time::Duration;

use std::path::Path;

use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Status, Streaming};
use uni_core::client::{AuthChannel, BearerToken};
use uni_core::tls::client::{channel, ClientTls};
use uni_proto::v1 as pb;
use uni_proto::v1::queue_service_client::QueueServiceClient;
use uni_proto::v1::workload_service_client::WorkloadServiceClient;

use crate::convert::Counts;
use crate::error::{Error, Result};

type Chan = AuthChannel;

#[derive(Clone)]
pub struct Universal {
    workloads: WorkloadServiceClient<Chan>,
    queues: QueueServiceClient<Chan>,
}

fn absent<T>(r: Result<T, Status>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(s.into()),
    }
}

impl Universal {
    /// A client of `endpoint` (`https://host:port`, trusting `ca`; `http://` only for a
    /// loopback scheduler in insecure mode); connects on first use and reconnects after
    /// failures, so the operator starts while the scheduler is still coming up.
    pub fn new(endpoint: &str, token: Option<String>, ca: Option<&Path>) -> Result<Self> {
        let bad = |message: String| Error::Connect {
            endpoint: endpoint.to_string(),
            message,
        };
        let tls = ClientTls::from_files(ca, None, None).map_err(|e| bad(e.to_string()))?;
        let channel = channel(endpoint, Some(&tls))
            .map_err(|e| bad(e.to_string()))?
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .connect_lazy();
        let auth = BearerToken::new(token.as_deref().map(str::trim))
            .map_err(|_| Error::Config("the token is not valid in a gRPC header".into()))?;
        let channel = InterceptedService::new(channel, auth);
        Ok(Self {
            workloads: WorkloadServiceClient::new(channel.clone())
                .max_decoding_message_size(uni_core::client::MAX_API_RESPONSE_BYTES),
            queues: QueueServiceClient::new(channel)
                .max_decoding_message_size(uni_core::client::MAX_API_RESPONSE_BYTES),
        })
    }

    pub async fn get_workload(&self, namespace: &str, name: &str) -> Result<Option<pb::Workload>> {
        let req = pb::GetWorkloadRequest {
            namespace: namespace.into(),
            name: name.into(),
        };
        absent(
            self.workloads
                .clone()
                .get_workload(req)
                .await
                .map(|r| r.into_inner()),
        )
    }

    pub async fn create_workload(&self, w: pb::Workload) -> Result<pb::Workload, Status> {
        let req = pb::CreateWorkloadRequest {
            workload: Some(w),
            dry_run: false,
        };
        Ok(self
            .workloads
            .clone()
            .create_workload(req)
            .await?
            .into_inner())
    }

    /// Replaces spec, labels and annotations, if the stored version is still `expected`.
    pub async fn update_workload(
        &self,
        w: pb::Workload,
        expected: i64,
    ) -> Result<pb::Workload, Status> {
        let req = pb::UpdateWorkloadRequest {
            workload: Some(w),
            expected_resource_version: expected,
            dry_run: false,
        };
        Ok(self
            .workloads
            .clone()
            .update_workload(req)
            .await?
            .into_inner())
    }

    pub async fn scale_workload(
        &self,
        namespace: &str,
        name: &str,
        counts: Counts,
        expected: i64,
    ) -> Result<pb::Workload, Status> {
        let req = pb::ScaleWorkloadRequest {
            namespace: namespace.into(),
            name: name.into(),
            desired: counts.desired,
            min: Some(counts.min),
            max: Some(counts.max),
            expected_resource_version: expected,
        };
        Ok(self
            .workloads
            .clone()
            .scale_workload(req)
            .await?
            .into_inner())
    }

    /// Deletes the workload; one already gone counts as deleted.
    pub async fn delete_workload(&self, namespace: &str, name: &str, expected: i64) -> Result<()> {
        let req = pb::DeleteWorkloadRequest {
            namespace: namespace.into(),
            name: name.into(),
            expected_resource_version: expected,
            grace_period_seconds: None,
        };
        absent(self.workloads.clone().delete_workload(req).await).map(|_| ())
    }

    /// Every change to workloads the operator manages, starting with each as ADDED.
    pub async fn watch_managed(
        &self,
        namespace: Option<&str>,
    ) -> Result<Streaming<pb::WatchWorkloadsResponse>> {
        let req = pb::WatchWorkloadsRequest {
            namespace: namespace.unwrap_or_default().into(),
            all_namespaces: namespace.is_none(),
            label_selector: crate::labels::managed_selector(),
            kind: pb::WorkloadKind::Unspecified as i32,
            resource_version: 0,
            allow_bookmarks: false,
        };
        Ok(self
            .workloads
            .clone()
            .watch_workloads(req)
            .await?
            .into_inner())
    }

    pub async fn get_queue(&self, name: &str) -> Result<Option<pb::Queue>> {
        let req = pb::GetQueueRequest { name: name.into() };
        absent(
            self.queues
                .clone()
                .get_queue(req)
                .await
                .map(|r| r.into_inner()),
        )
    }

    pub async fn create_queue(&self, q: pb::Queue) -> Result<pb::Queue, Status> {
        let req = pb::CreateQueueRequest {
            queue: Some(q),
            dry_run: false,
        };
        Ok(self.queues.clone().create_queue(req).await?.into_inner())
    }

    pub async fn update_queue(&self, q: pb::Queue, expected: i64) -> Result<pb::Queue, Status> {
        let req = pb::UpdateQueueRequest {
            queue: Some(q),
            expected_resource_version: expected,
            dry_run: false,
        };
        Ok(self.queues.clone().update_queue(req).await?.into_inner())
    }

    /// Deletes the queue; one already gone counts as deleted. FAILED_PRECONDITION while
    /// workloads still use it comes back as the error.
    pub async fn delete_queue(&self, name: &str, expected: i64) -> Result<()> {
        let req = pb::DeleteQueueRequest {
            name: name.into(),
            expected_resource_version: expected,
        };
        absent(self.queues.clone().delete_queue(req).await).map(|_| ())
    }
}
