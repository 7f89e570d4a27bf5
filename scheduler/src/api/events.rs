//! EventService: events that components write under `events/{namespace}/{id}`, listed and
//! watched from the store.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uni_core::convert::event_type_filter;
use uni_core::model::{Event, EventType, Resource, Verb};
use uni_core::store::keys::{EventKey, TypedKey};
use uni_proto::v1 as pb;
use uni_proto::v1::event_service_server::EventService;

use super::access::Visible;
use super::paging::{list_store, page_size};
use super::watch::{self, WatchRequest};
use super::{args, ApiContext};
use crate::auth::Caller;
use crate::error::Result;

pub struct EventApi {
    ctx: ApiContext,
    shutdown: CancellationToken,
}

/// A request's filter, checked.
struct Filter {
    /// Key prefix: one namespace or all.
    prefix: String,
    kind: String,
    name: String,
    event_type: Option<EventType>,
}

impl Filter {
    fn parse(f: Option<pb::EventFilter>) -> Result<Self> {
        let f = f.unwrap_or_default();
        let prefix = if f.all_namespaces {
            EventKey::prefix()
        } else {
            EventKey::namespace_prefix(&args::namespace(&f.namespace)?)
        };
        Ok(Self {
            prefix,
            kind: f.involved_kind,
            name: f.involved_name,
            event_type: event_type_filter(f.r#type)?,
        })
    }

    /// Whether it looks at more than the key.
    fn is_narrow(&self) -> bool {
        !self.kind.is_empty() || !self.name.is_empty() || self.event_type.is_some()
    }

    fn matches(&self, e: &Event) -> bool {
        (self.kind.is_empty() || e.involved.kind == self.kind)
            && (self.name.is_empty() || e.involved.name == self.name)
            && self.event_type.is_none_or(|t| e.event_type == t)
    }
}

impl EventApi {
    /// `shutdown` ends open watches so that the server can drain.
    pub fn new(ctx: ApiContext, shutdown: CancellationToken) -> Self {
        Self { ctx, shutdown }
    }

    /// Pages go in key order; each page is sorted oldest first (one page usually holds every
    /// event of an object).
    async fn list(
        &self,
        req: pb::ListEventsRequest,
        visible: Visible,
    ) -> Result<pb::ListEventsResponse> {
        let filter = Filter::parse(req.filter)?;
        let mut page = list_store::<Event>(
            &*self.ctx.store,
            &filter.prefix,
            &req.page_token,
            page_size(req.page_size),
            |e| visible.namespace(&e.meta.namespace) && filter.matches(e),
        )
        .await?;
        page.items.sort_by_key(|e| (e.first_seen, e.last_seen));
        Ok(pb::ListEventsResponse {
            events: page.items.iter().map(pb::Event::from).collect(),
            next_page_token: page.next_token,
            resource_version: page.revision,
        })
    }

    async fn watch(
        &self,
        req: pb::WatchEventsRequest,
        visible: Visible,
    ) -> std::result::Result<watch::Responses<pb::WatchEventsResponse>, Status> {
        let filter = Filter::parse(req.filter)?;
        let request = WatchRequest {
            prefix: filter.prefix.clone(),
            resource_version: req.resource_version,
            allow_bookmarks: req.allow_bookmarks,
            narrowed: filter.is_narrow() || visible.is_narrow(),
            matches: Box::new(move |e: &Event| {
                visible.namespace(&e.meta.namespace) && filter.matches(e)
            }),
        };
        let respond =
            Arc::new(
                |ty: pb::WatchEventType, e: Option<Event>, rev| pb::WatchEventsResponse {
                    r#type: ty.into(),
                    event: e.as_ref().map(pb::Event::from),
                    resource_version: rev,
                },
            );
        watch::start(&self.ctx, request, respond, self.shutdown.clone()).await
    }
}

/// Events of one namespace need the verb there; of all, they are narrowed to those visible.
fn events_visible(
    caller: &Caller,
    verb: Verb,
    filter: Option<&pb::EventFilter>,
) -> Result<Visible, Status> {
    let (ns, all) = filter
        .map(|f| (f.namespace.as_str(), f.all_namespaces))
        .unwrap_or_default();
    Visible::of(caller, verb, Resource::Events, ns, all)
}

#[tonic::async_trait]
impl EventService for EventApi {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let visible = events_visible(&caller, Verb::List, req.filter.as_ref())?;
        Ok(Response::new(self.list(req, visible).await?))
    }

    type WatchEventsStream = watch::Responses<pb::WatchEventsResponse>;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let visible = events_visible(&caller, Verb::Watch, req.filter.as_ref())?;
        Ok(Response::new(self.watch(req, visible).await?))
    }
}
