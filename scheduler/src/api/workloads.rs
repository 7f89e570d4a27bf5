//! WorkloadService: workloads are read from and written to the store (consistent on every
//! replica); their status is joined at read time with what the cache knows about replicas.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uni_core::convert::{workload_from_request, workload_kind_filter};
use uni_core::error::shorten;
use uni_core::model::{
    Resource, ServiceTemplate, UnixMillis, Verb, Workload, WorkloadSpec, WorkloadStatus,
    DEFAULT_NAMESPACE,
};
use uni_core::store::keys::{TypedKey, WorkloadKey};
use uni_core::validate::{validate_workload, validate_workload_update};
use uni_proto::v1 as pb;
use uni_proto::v1::workload_service_server::WorkloadService;
use uuid::Uuid;

use super::access::{meta_name, or_default, Visible};
use super::create_batch::CreateBatcher;
use super::paging::{list_store, page_size};
use super::watch::{self, WatchRequest};
use super::{args, object, overlay_status, set_endpoint, ApiContext};
use crate::auth::Caller;
use crate::error::Result;

pub struct WorkloadApi {
    ctx: ApiContext,
    shutdown: CancellationToken,
    creates: CreateBatcher,
}

impl WorkloadApi {
    /// `shutdown` ends open watches so that the server can drain.
    pub fn new(ctx: ApiContext, shutdown: CancellationToken) -> Self {
        let creates = CreateBatcher::spawn(ctx.store.clone(), shutdown.clone());
        Self {
            ctx,
            shutdown,
            creates,
        }
    }

    /// The wire form, with the status derived from the cache.
    fn view(&self, mut w: Workload) -> pb::Workload {
        overlay_status(&self.ctx.cache.lock(), &mut w);
        set_endpoint(&self.ctx.gateway_url, &mut w);
        pb::Workload::from(&w)
    }

    async fn create(&self, req: pb::CreateWorkloadRequest) -> Result<pb::Workload> {
        let p = req.workload.ok_or_else(|| args::required("workload"))?;
        let mut w = workload_from_request(&p)?;
        let key = WorkloadKey::new(w.meta.namespace.clone(), w.meta.name.clone())?.format();
        w.meta.uid = Uuid::new_v4().to_string();
        w.meta.generation = 1;
        w.meta.created = UnixMillis::now();
        w.meta.deleted = None;
        w.meta.resource_version = 0;
        w.status = WorkloadStatus {
            replicas_desired: w.spec.desired_replicas(),
            ..WorkloadStatus::default()
        };
        record_template(&mut w);
        if !req.dry_run {
            w.meta.resource_version = object::create_batched(&self.creates, &key, &w).await?;
        }
        // Just created, so Pending as stored: the reply skips the cache (and its lock, which
        // the scheduling loop holds while it places).
        set_endpoint(&self.ctx.gateway_url, &mut w);
        Ok(pb::Workload::from(&w))
    }

    async fn get(&self, req: pb::GetWorkloadRequest) -> Result<pb::Workload> {
        let (key, what) = workload_key(&req.namespace, &req.name)?;
        let (w, _) = object::read::<Workload>(&*self.ctx.store, &key, &what).await?;
        Ok(self.view(w))
    }

    async fn list(
        &self,
        req: pb::ListWorkloadsRequest,
        visible: Visible,
    ) -> Result<pb::ListWorkloadsResponse> {
        let prefix = if req.all_namespaces {
            WorkloadKey::prefix()
        } else {
            WorkloadKey::namespace_prefix(&args::namespace(&req.namespace)?)
        };
        let selector = args::selector("label_selector", &req.label_selector)?;
        let kind = workload_kind_filter(req.kind)?;
        let page = list_store::<Workload>(
            &*self.ctx.store,
            &prefix,
            &req.page_token,
            page_size(req.page_size),
            |w| {
                visible.namespace(&w.meta.namespace)
                    && selector.matches(&w.meta.labels)
                    && kind.is_none_or(|k| w.kind() == k)
            },
        )
        .await?;
        let workloads = {
            let state = self.ctx.cache.lock();
            page.items
                .into_iter()
                .map(|mut w| {
                    overlay_status(&state, &mut w);
                    set_endpoint(&self.ctx.gateway_url, &mut w);
                    pb::Workload::from(&w)
                })
                .collect()
        };
        Ok(pb::ListWorkloadsResponse {
            workloads,
            next_page_token: page.next_token,
            resource_version: page.revision,
        })
    }

    async fn update(&self, req: pb::UpdateWorkloadRequest) -> Result<pb::Workload> {
        let p = req.workload.ok_or_else(|| args::required("workload"))?;
        let new = workload_from_request(&p)?;
        let (key, what) = workload_key(&new.meta.namespace, &new.meta.name)?;
        let store = &*self.ctx.store;
        let expected = req.expected_resource_version;
        let w = object::update(
            store,
            &key,
            &what,
            expected,
            req.dry_run,
            |mut w: Workload| {
                validate_workload_update(&w, &new)?;
                if w.spec != new.spec {
                    w.spec = new.spec.clone();
                    w.meta.generation += 1;
                    record_template(&mut w);
                }
                w.meta.labels = new.meta.labels.clone();
                w.meta.annotations = new.meta.annotations.clone();
                Ok(w)
            },
        )
        .await?;
        Ok(self.view(w))
    }

    async fn scale(&self, req: pb::ScaleWorkloadRequest) -> Result<pb::Workload> {
        let (key, what) = workload_key(&req.namespace, &req.name)?;
        let store = &*self.ctx.store;
        let expected = req.expected_resource_version;
        let w = object::update(store, &key, &what, expected, false, |mut w: Workload| {
            let before = w.spec.clone();
            w.spec.scale(req.desired, req.min, req.max)?;
            validate_workload(&w)?;
            if w.spec != before {
                w.meta.generation += 1;
            }
            Ok(w)
        })
        .await?;
        Ok(self.view(w))
    }

    /// Puts a recorded template back; the leader rolls the replicas to it. Naming a host
    /// user or group is checked as for an update, since the revision may be someone else's.
    async fn rollback(
        &self,
        req: pb::RollbackWorkloadRequest,
        may_host: bool,
    ) -> Result<pb::Workload> {
        let (key, what) = workload_key(&req.namespace, &req.name)?;
        let store = &*self.ctx.store;
        let to = req.to_revision;
        let w = object::update(store, &key, &what, 0, false, |mut w: Workload| {
            let revisions = w.status.revisions.clone();
            let WorkloadSpec::Inference(s) = &mut w.spec else {
                return Err(crate::error::Error::from(uni_core::Error::invalid(
                    "name",
                    format!("{what} is a training job; only inference services roll back"),
                )));
            };
            let current = ServiceTemplate::of(s).hash();
            let target = if to == 0 {
                revisions.iter().rev().find(|x| x.hash != current)
            } else {
                revisions.iter().find(|x| x.revision == to)
            };
            let known: Vec<String> = revisions.iter().map(|x| x.revision.to_string()).collect();
            let Some(t) = target.and_then(|x| x.template.clone()) else {
                return Err(crate::error::Error::from(uni_core::Error::invalid(
                    "to_revision",
                    match to {
                        0 => format!("{what} has no earlier revision"),
                        n => format!("{what} has no revision {n} (kept: {})", known.join(", ")),
                    },
                )));
            };
            if !may_host && (t.template.run_as_user.is_some() || t.template.run_as_group.is_some())
            {
                return Err(crate::error::Error::from(uni_core::Error::invalid(
                    "to_revision",
                    "that revision names the host user or group replicas run as, which needs \
                     role host-user in the namespace",
                )));
            }
            t.apply_to(s);
            validate_workload(&w)?;
            w.meta.generation += 1;
            record_template(&mut w);
            Ok(w)
        })
        .await?;
        Ok(self.view(w))
    }

    /// Removes the key; the leader sees the deletion and stops and frees the replicas.
    async fn delete(&self, req: pb::DeleteWorkloadRequest) -> Result<pb::DeleteWorkloadResponse> {
        let (key, what) = workload_key(&req.namespace, &req.name)?;
        let store = &*self.ctx.store;
        let (mut w, revision) =
            object::delete::<Workload>(store, &key, &what, req.expected_resource_version).await?;
        w.meta.deleted = Some(UnixMillis::now());
        w.meta.resource_version = revision;
        Ok(pb::DeleteWorkloadResponse {
            workload: Some(self.view(w)),
        })
    }

    async fn watch(
        &self,
        req: pb::WatchWorkloadsRequest,
        visible: Visible,
    ) -> std::result::Result<watch::Responses<pb::WatchWorkloadsResponse>, Status> {
        let prefix = if req.all_namespaces {
            WorkloadKey::prefix()
        } else {
            WorkloadKey::namespace_prefix(&args::namespace(&req.namespace)?)
        };
        let selector = args::selector("label_selector", &req.label_selector)?;
        let kind = workload_kind_filter(req.kind).map_err(crate::error::Error::from)?;
        let narrowed = !selector.is_empty() || kind.is_some() || visible.is_narrow();
        let request = WatchRequest {
            prefix,
            resource_version: req.resource_version,
            allow_bookmarks: req.allow_bookmarks,
            matches: Box::new(move |w: &Workload| {
                visible.namespace(&w.meta.namespace)
                    && selector.matches(&w.meta.labels)
                    && kind.is_none_or(|k| w.kind() == k)
            }),
            narrowed,
        };
        let (cache, gateway_url) = (self.ctx.cache.clone(), self.ctx.gateway_url.clone());
        let respond = Arc::new(move |ty: pb::WatchEventType, w: Option<Workload>, rev| {
            let workload = w.map(|mut w| {
                // A deleted workload keeps its last state; others show their live status.
                if ty != pb::WatchEventType::Deleted {
                    overlay_status(&cache.lock(), &mut w);
                }
                set_endpoint(&gateway_url, &mut w);
                pb::Workload::from(&w)
            });
            pb::WatchWorkloadsResponse {
                r#type: ty.into(),
                workload,
                resource_version: rev,
            }
        });
        watch::start(&self.ctx, request, respond, self.shutdown.clone()).await
    }
}

/// A template that names its host user or group runs as that identity on every node it lands
/// on: only a caller allowed `create hostidentities` in the workload's namespace (role
/// `host-user` there, or cluster-admin) may send one.
/// An inference service's template goes into its history with the write that sets it, so
/// the history costs the leader no writes.
fn record_template(w: &mut Workload) {
    if let WorkloadSpec::Inference(s) = &w.spec {
        let t = ServiceTemplate::of(s);
        uni_core::model::revision::record(&mut w.status.revisions, &t, UnixMillis::now());
    }
}

fn may_name_host_identity(caller: &Caller, w: Option<&pb::Workload>) -> Result<(), Status> {
    use pb::workload::Spec;
    let template = match w.and_then(|w| w.spec.as_ref()) {
        Some(Spec::Inference(s)) => s.template.as_ref(),
        Some(Spec::Training(s)) => s.template.as_ref(),
        None => None,
    };
    let Some(t) = template else { return Ok(()) };
    let field = match (t.run_as_user, t.run_as_group) {
        (Some(_), _) => "run_as_user",
        (None, Some(_)) => "run_as_group",
        (None, None) => return Ok(()),
    };
    let namespace = w
        .and_then(|w| w.meta.as_ref())
        .map(|m| or_default(&m.namespace).to_string())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if caller.can(Verb::Create, Resource::HostIdentities, &namespace) {
        return Ok(());
    }
    Err(Status::permission_denied(shorten(
        format!(
            "spec.template.{field}: user {:?} may not create hostidentities in namespace \
             {namespace:?}: naming the host user or group replicas run as needs role host-user \
             there (granted by a cluster admin); leave it unset to run as the namespace's own \
             unprivileged user",
            caller.subject.user
        ),
        crate::error::MAX_STATUS_MESSAGE,
    )))
}

/// The store key of a workload and how messages name it.
fn workload_key(namespace: &str, name: &str) -> Result<(String, String)> {
    let ns = args::namespace(namespace)?;
    let key = WorkloadKey::new(ns.clone(), name)?;
    Ok((key.format(), format!("workload {ns}/{name}")))
}

#[tonic::async_trait]
impl WorkloadService for WorkloadApi {
    async fn create_workload(
        &self,
        req: Request<pb::CreateWorkloadRequest>,
    ) -> Result<Response<pb::Workload>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let (ns, name) = meta_name(req.workload.as_ref().and_then(|w| w.meta.as_ref()));
        let call = async {
            may_name_host_identity(&caller, req.workload.as_ref())?;
            Ok(self.create(req).await?)
        };
        let w = caller
            .audited(Verb::Create, Resource::Workloads, &ns, &name, call)
            .await?;
        Ok(Response::new(w))
    }

    async fn get_workload(
        &self,
        req: Request<pb::GetWorkloadRequest>,
    ) -> Result<Response<pb::Workload>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        caller.check(Verb::Get, Resource::Workloads, or_default(&req.namespace))?;
        Ok(Response::new(self.get(req).await?))
    }

    async fn list_workloads(
        &self,
        req: Request<pb::ListWorkloadsRequest>,
    ) -> Result<Response<pb::ListWorkloadsResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let visible = Visible::of(
            &caller,
            Verb::List,
            Resource::Workloads,
            &req.namespace,
            req.all_namespaces,
        )?;
        Ok(Response::new(self.list(req, visible).await?))
    }

    async fn update_workload(
        &self,
        req: Request<pb::UpdateWorkloadRequest>,
    ) -> Result<Response<pb::Workload>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let (ns, name) = meta_name(req.workload.as_ref().and_then(|w| w.meta.as_ref()));
        let call = async {
            may_name_host_identity(&caller, req.workload.as_ref())?;
            Ok(self.update(req).await?)
        };
        let w = caller
            .audited(Verb::Update, Resource::Workloads, &ns, &name, call)
            .await?;
        Ok(Response::new(w))
    }

    async fn scale_workload(
        &self,
        req: Request<pb::ScaleWorkloadRequest>,
    ) -> Result<Response<pb::Workload>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let (ns, name) = (or_default(&req.namespace).to_string(), req.name.clone());
        let call = async { Ok(self.scale(req).await?) };
        let w = caller
            .audited(Verb::Scale, Resource::Workloads, &ns, &name, call)
            .await?;
        Ok(Response::new(w))
    }

    async fn rollback_workload(
        &self,
        req: Request<pb::RollbackWorkloadRequest>,
    ) -> Result<Response<pb::Workload>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let (ns, name) = (or_default(&req.namespace).to_string(), req.name.clone());
        let may_host = caller.can(Verb::Create, Resource::HostIdentities, &ns);
        let call = async { Ok(self.rollback(req, may_host).await?) };
        let w = caller
            .audited(Verb::Update, Resource::Workloads, &ns, &name, call)
            .await?;
        Ok(Response::new(w))
    }

    async fn delete_workload(
        &self,
        req: Request<pb::DeleteWorkloadRequest>,
    ) -> Result<Response<pb::DeleteWorkloadResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let (ns, name) = (or_default(&req.namespace).to_string(), req.name.clone());
        let call = async { Ok(self.delete(req).await?) };
        let w = caller
            .audited(Verb::Delete, Resource::Workloads, &ns, &name, call)
            .await?;
        Ok(Response::new(w))
    }

    type WatchWorkloadsStream = watch::Responses<pb::WatchWorkloadsResponse>;

    async fn watch_workloads(
        &self,
        req: Request<pb::WatchWorkloadsRequest>,
    ) -> Result<Response<Self::WatchWorkloadsStream>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let visible = Visible::of(
            &caller,
            Verb::Watch,
            Resource::Workloads,
            &req.namespace,
            req.all_namespaces,
        )?;
        Ok(Response::new(self.watch(req, visible).await?))
    }
}
