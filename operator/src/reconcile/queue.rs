//! Reconciling a Queue: mirrored as a Universal queue by the shared step driver. Queues that
//! exist without the operator are adopted (the resource is the source of truth) and the
//! built-in "default" queue is never deleted.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tonic::Status;
use uni_proto::v1 as pb;

use super::context::Context;
use super::decide::{Observed, Step, Wanted};
use super::driver::{self, Deletion, Mirror};
use super::events::{for_step, Note};
use super::queue_status::queue_status;
use super::status::Verdict;
use crate::convert::{desired_queue, Counts};
use crate::crd::{Queue, QueueStatus};
use crate::error::Result;
use crate::universal::Universal;

/// Universal's built-in queue: mirrored like any other, never deleted.
pub const DEFAULT_QUEUE: &str = "default";

pub async fn reconcile(obj: Arc<Queue>, ctx: Arc<Context>) -> Result<Action> {
    let name = obj.name_any();
    let (queue, fingerprint) = desired_queue(&obj);
    let mirror = QueueMirror {
        obj: &obj,
        api: Api::all(ctx.client.clone()),
        what: format!("queue {name}"),
        name,
        queue,
        fingerprint,
    };
    driver::reconcile(&mirror, &ctx).await
}

struct QueueMirror<'a> {
    obj: &'a Queue,
    api: Api<Queue>,
    name: String,
    /// Names the Universal object in events.
    what: String,
    queue: pb::Queue,
    fingerprint: String,
}

impl Mirror for QueueMirror<'_> {
    type Resource = Queue;
    type Object = pb::Queue;
    type Status = QueueStatus;

    fn resource(&self) -> &Queue {
        self.obj
    }

    fn api(&self) -> &Api<Queue> {
        &self.api
    }

    fn wanted(&self) -> Result<Wanted<'_>, &str> {
        Ok(Wanted {
            fingerprint: &self.fingerprint,
            counts: Counts::default(),
        })
    }

    fn observe(q: &pb::Queue) -> Observed {
        Observed::queue(q)
    }

    /// Queues announce their spec writes only.
    fn note(&self, step: &Step) -> Option<Note> {
        match step {
            Step::Create | Step::Update { .. } => {
                for_step(step, &self.what, self.obj.status.is_some())
            }
            _ => None,
        }
    }

    fn written(&self) -> Option<&QueueStatus> {
        self.obj.status.as_ref()
    }

    fn status(&self, verdict: &Verdict, observed: Option<&pb::Queue>, now: &Time) -> QueueStatus {
        let verdict = match verdict {
            Verdict::Accepted => Ok(()),
            Verdict::Rejected { message, .. } => Err(message.clone()),
        };
        let generation = self.obj.meta().generation;
        queue_status(self.written(), generation, &verdict, observed, now)
    }

    fn conditions(status: &QueueStatus) -> &[Condition] {
        &status.conditions
    }

    async fn get(&self, u: &Universal) -> Result<Option<pb::Queue>> {
        u.get_queue(&self.name).await
    }

    async fn create(&self, u: &Universal) -> Result<pb::Queue, Status> {
        u.create_queue(self.queue.clone()).await
    }

    async fn update(&self, u: &Universal, expected: i64) -> Result<pb::Queue, Status> {
        u.update_queue(self.queue.clone(), expected).await
    }

    /// Never asked: a queue's counts are empty on both sides.
    async fn scale(&self, _: &Universal, _: Counts, _: i64) -> Result<pb::Queue, Status> {
        Err(Status::unimplemented("queues have no replica counts"))
    }

    async fn delete(&self, u: &Universal, expected: i64) -> Result<Deletion> {
        if self.name == DEFAULT_QUEUE {
            return Ok(Deletion::Kept);
        }
        u.delete_queue(&self.name, expected).await?;
        Ok(Deletion::Requested)
    }
}
