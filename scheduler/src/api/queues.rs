//! QueueService: queues live in the store and are written with compare-and-swap like
//! workloads. The "default" queue always exists: every replica creates it at startup if it is
//! missing, and it cannot be deleted.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Request, Response, Status};
use uni_core::convert::queue_from_request;
use uni_core::model::{ObjectMeta, Queue, QueueStatus, Resource, UnixMillis, Verb, DEFAULT_QUEUE};
use uni_core::store::keys::{QueueKey, TypedKey};
use uni_core::store::KvStore;
use uni_core::validate::validate_queue_in_tree;
use uni_core::Error as CoreError;
use uni_proto::v1 as pb;
use uni_proto::v1::queue_service_server::QueueService;
use uuid::Uuid;

use super::paging::{list_store, page_size};
use super::{args, object, ApiContext};
use crate::error::{Error, Result};
use crate::schedule::admission_tree;

/// How long a delete waits for the cache to catch up before checking which workloads use the
/// queue.
const CACHE_CATCH_UP: Duration = Duration::from_secs(5);

pub struct QueueApi {
    ctx: ApiContext,
}

/// A new queue: server-owned fields set, nothing observed yet.
fn fresh(mut q: Queue) -> Queue {
    q.meta.uid = Uuid::new_v4().to_string();
    q.meta.generation = 1;
    q.meta.created = UnixMillis::now();
    q.meta.deleted = None;
    q.meta.resource_version = 0;
    q.status = QueueStatus::default();
    q
}

/// Creates the "default" queue unless it exists (any replica may win the race; that is fine).
pub async fn ensure_default_queue(store: &dyn KvStore) -> Result<()> {
    let queue = fresh(Queue {
        meta: ObjectMeta::cluster(DEFAULT_QUEUE),
        ..Queue::default()
    });
    let key = QueueKey::new(DEFAULT_QUEUE)?.format();
    match object::create(store, &key, &queue).await {
        Ok(_) | Err(Error::Core(CoreError::AlreadyExists(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

fn queue_key(name: &str) -> Result<(String, String)> {
    Ok((QueueKey::new(name)?.format(), format!("queue {name}")))
}

impl QueueApi {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }

    /// Every stored queue, to judge a change against the tree.
    async fn all(&self) -> Result<Vec<Queue>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page =
                list_store::<Queue>(&*self.ctx.store, &QueueKey::prefix(), &token, 1000, |_| {
                    true
                })
                .await?;
            out.extend(page.items);
            if page.next_token.is_empty() {
                return Ok(out);
            }
            token = page.next_token;
        }
    }

    /// `q` as it would sit in the tree of stored queues.
    async fn check_tree(&self, q: &Queue) -> Result<()> {
        let others = self.all().await?;
        validate_queue_in_tree(q, &others)?;
        Ok(())
    }

    /// What the scheduler holds for each queue now (queue status is computed, never stored).
    fn observe(&self, queues: &mut [Queue]) {
        let st = self.ctx.cache.lock();
        let t = admission_tree(&st, st.snapshot().capacity());
        let mut counts: HashMap<&str, (u32, u32)> = HashMap::new();
        for (r, w) in st.workloads() {
            let entry = counts.entry(w.value.spec.queue()).or_default();
            if w.value.status.phase.is_terminal() {
                continue;
            }
            if st.allocations_of(r).is_empty() {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        for q in queues {
            let name = q.meta.name.as_str();
            let (pending, running) = counts.get(name).copied().unwrap_or_default();
            q.status = QueueStatus {
                usage: t.usage(name),
                borrowed: t.borrowed(name),
                lent: t.lent(name),
                pending_workloads: pending,
                running_workloads: running,
            };
        }
    }

    async fn create(&self, req: pb::CreateQueueRequest) -> Result<pb::Queue> {
        let p = req.queue.ok_or_else(|| args::required("queue"))?;
        let mut q = fresh(queue_from_request(&p)?);
        let (key, _) = queue_key(&q.meta.name)?;
        self.check_tree(&q).await?;
        if !req.dry_run {
            q.meta.resource_version = object::create(&*self.ctx.store, &key, &q).await?;
        }
        Ok(pb::Queue::from(&q))
    }

    async fn get(&self, req: pb::GetQueueRequest) -> Result<pb::Queue> {
        let (key, what) = queue_key(&req.name)?;
        let (q, _) = object::read::<Queue>(&*self.ctx.store, &key, &what).await?;
        let mut qs = [q];
        self.observe(&mut qs);
        Ok(pb::Queue::from(&qs[0]))
    }

    async fn list(&self, req: pb::ListQueuesRequest) -> Result<pb::ListQueuesResponse> {
        let selector = args::selector("label_selector", &req.label_selector)?;
        let page = list_store::<Queue>(
            &*self.ctx.store,
            &QueueKey::prefix(),
            &req.page_token,
            page_size(req.page_size),
            |q| selector.matches(&q.meta.labels),
        )
        .await?;
        let mut items = page.items;
        self.observe(&mut items);
        Ok(pb::ListQueuesResponse {
            queues: items.iter().map(pb::Queue::from).collect(),
            next_page_token: page.next_token,
            resource_version: page.revision,
        })
    }

    async fn update(&self, req: pb::UpdateQueueRequest) -> Result<pb::Queue> {
        let p = req.queue.ok_or_else(|| args::required("queue"))?;
        let new = queue_from_request(&p)?;
        let (key, what) = queue_key(&new.meta.name)?;
        self.check_tree(&new).await?;
        let store = &*self.ctx.store;
        let expected = req.expected_resource_version;
        let q = object::update(store, &key, &what, expected, req.dry_run, |mut q: Queue| {
            if q.spec != new.spec {
                q.spec = new.spec.clone();
                q.meta.generation += 1;
            }
            q.meta.labels = new.meta.labels.clone();
            q.meta.annotations = new.meta.annotations.clone();
            Ok(q)
        })
        .await?;
        Ok(pb::Queue::from(&q))
    }

    /// Refused for the default queue and while workloads use the queue.
    async fn delete(&self, req: pb::DeleteQueueRequest) -> Result<pb::DeleteQueueResponse> {
        let (key, what) = queue_key(&req.name)?;
        if req.name == DEFAULT_QUEUE {
            return Err(Error::FailedPrecondition(
                "the default queue always exists and cannot be deleted".into(),
            ));
        }
        // Judge usage on a cache that has seen every write committed before this call.
        let revision = self.ctx.store.revision().await?;
        self.ctx.cache.wait_for(revision, CACHE_CATCH_UP).await;
        let children: Vec<String> = {
            let state = self.ctx.cache.lock();
            state
                .queues()
                .values()
                .filter(|q| q.value.spec.parent == req.name)
                .map(|q| q.value.meta.name.clone())
                .collect()
        };
        if let Some(first) = children.first() {
            return Err(Error::FailedPrecondition(format!(
                "{what} is the parent of {} queue(s), e.g. {first}; move or delete them first",
                children.len()
            )));
        }
        let users: Vec<String> = {
            let state = self.ctx.cache.lock();
            state
                .workloads()
                .values()
                .filter(|w| w.value.spec.queue() == req.name)
                .map(|w| w.value.meta.key())
                .collect()
        };
        if let Some(first) = users.first() {
            return Err(Error::FailedPrecondition(format!(
                "{what} is used by {} workload(s), e.g. {first}",
                users.len()
            )));
        }
        let store = &*self.ctx.store;
        let (mut q, revision) =
            object::delete::<Queue>(store, &key, &what, req.expected_resource_version).await?;
        q.meta.deleted = Some(UnixMillis::now());
        q.meta.resource_version = revision;
        Ok(pb::DeleteQueueResponse {
            queue: Some(pb::Queue::from(&q)),
        })
    }
}

/// The name of a queue in a request, for authorization and the audit log.
fn queue_name(q: Option<&pb::Queue>) -> String {
    q.and_then(|q| q.meta.as_ref())
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl QueueService for QueueApi {
    async fn create_queue(
        &self,
        req: Request<pb::CreateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = queue_name(req.queue.as_ref());
        let call = async { Ok(self.create(req).await?) };
        let out = caller
            .audited(Verb::Create, Resource::Queues, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }

    async fn get_queue(
        &self,
        req: Request<pb::GetQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        // Any authenticated caller may read queues: submitting needs their names.
        self.ctx.auth.caller(&req).await?;
        Ok(Response::new(self.get(req.into_inner()).await?))
    }

    async fn list_queues(
        &self,
        req: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        // Any authenticated caller may read queues: submitting needs their names.
        self.ctx.auth.caller(&req).await?;
        Ok(Response::new(self.list(req.into_inner()).await?))
    }

    async fn update_queue(
        &self,
        req: Request<pb::UpdateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = queue_name(req.queue.as_ref());
        let call = async { Ok(self.update(req).await?) };
        let out = caller
            .audited(Verb::Update, Resource::Queues, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }

    async fn delete_queue(
        &self,
        req: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteQueueResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let name = req.name.clone();
        let call = async { Ok(self.delete(req).await?) };
        let out = caller
            .audited(Verb::Delete, Resource::Queues, "", &name, call)
            .await?;
        Ok(Response::new(out))
    }
}
