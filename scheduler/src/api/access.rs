//! AccessService (role bindings, WhoAmI), and the helpers every service uses to scope what a
//! caller sees.

use tonic::{Request, Response, Status};
use uni_core::convert::role_binding_from_request;
use uni_core::model::{
    access::permissions, ObjectMeta, Resource, Role, RoleBinding, UnixMillis, Verb,
    DEFAULT_NAMESPACE,
};
use uni_core::store::keys::{RoleBindingKey, TypedKey};
use uni_proto::v1 as pb;
use uni_proto::v1::access_service_server::AccessService;
use uuid::Uuid;

use super::paging::{list_store, page_size};
use super::{args, object, ApiContext};
use crate::auth::Caller;
use crate::error::Result;

/// Largest list of role bindings returned at once.
const MAX_BINDINGS_LISTED: u32 = 1000;

/// A namespace argument with the default applied (unchecked: authorization comes first, and
/// an invalid namespace matches no binding).
pub(crate) fn or_default(namespace: &str) -> &str {
    if namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        namespace
    }
}

/// (namespace, name) of an object in a request, for authorization and the audit log.
pub(crate) fn meta_name(meta: Option<&pb::ObjectMeta>) -> (String, String) {
    meta.map(|m| (or_default(&m.namespace).to_string(), m.name.clone()))
        .unwrap_or_else(|| (DEFAULT_NAMESPACE.to_string(), String::new()))
}

/// Which namespaces' objects a list or watch may return.
pub(crate) enum Visible {
    /// All it reads: one allowed namespace, or every namespace for a cluster-wide role.
    All,
    /// Only the namespaces where the caller may `verb` the resource.
    Allowed(Caller, Verb, Resource),
}

impl Visible {
    /// Checks a request for one namespace, or narrows one for every namespace.
    pub fn of(
        caller: &Caller,
        verb: Verb,
        resource: Resource,
        namespace: &str,
        all_namespaces: bool,
    ) -> Result<Self, Status> {
        if !all_namespaces {
            caller.check(verb, resource, or_default(namespace))?;
            return Ok(Self::All);
        }
        if caller.can(verb, resource, "") {
            return Ok(Self::All);
        }
        Ok(Self::Allowed(caller.clone(), verb, resource))
    }

    pub fn namespace(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Allowed(caller, verb, resource) => caller.can(*verb, *resource, namespace),
        }
    }

    /// True when it filters on more than the request's key prefix.
    pub fn is_narrow(&self) -> bool {
        matches!(self, Self::Allowed(..))
    }
}

pub struct AccessApi {
    ctx: ApiContext,
}

impl AccessApi {
    pub fn new(ctx: ApiContext) -> Self {
        Self { ctx }
    }

    async fn create(&self, p: pb::RoleBinding) -> Result<pb::RoleBinding> {
        let mut b = role_binding_from_request(&p)?;
        let key = RoleBindingKey::of(&b.meta.namespace, &b.meta.name)?.format();
        b.meta.uid = Uuid::new_v4().to_string();
        b.meta.generation = 1;
        b.meta.created = UnixMillis::now();
        b.meta.deleted = None;
        b.meta.resource_version = object::create(&*self.ctx.store, &key, &b).await?;
        self.ctx
            .auth
            .bindings_reached(b.meta.resource_version)
            .await;
        Ok(pb::RoleBinding::from(&b))
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<pb::RoleBinding> {
        let (key, what) = binding_key(namespace, name)?;
        let (b, _) = object::read::<RoleBinding>(&*self.ctx.store, &key, &what).await?;
        Ok(pb::RoleBinding::from(&b))
    }

    async fn list(
        &self,
        req: &pb::ListRoleBindingsRequest,
        visible: &Visible,
    ) -> Result<pb::ListRoleBindingsResponse> {
        let prefix = if req.all_namespaces {
            RoleBindingKey::prefix()
        } else {
            if !req.namespace.is_empty() {
                args::namespace(&req.namespace)?;
            }
            RoleBindingKey::scope_prefix(&req.namespace)
        };
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = list_store::<RoleBinding>(
                &*self.ctx.store,
                &prefix,
                &token,
                page_size(MAX_BINDINGS_LISTED),
                |b| visible.namespace(&b.meta.namespace),
            )
            .await?;
            out.extend(page.items.iter().map(pb::RoleBinding::from));
            if page.next_token.is_empty() || out.len() >= MAX_BINDINGS_LISTED as usize {
                break;
            }
            token = page.next_token;
        }
        Ok(pb::ListRoleBindingsResponse { role_bindings: out })
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<pb::DeleteRoleBindingResponse> {
        let (key, what) = binding_key(namespace, name)?;
        let (mut b, revision) =
            object::delete::<RoleBinding>(&*self.ctx.store, &key, &what, 0).await?;
        b.meta.deleted = Some(UnixMillis::now());
        b.meta.resource_version = revision;
        self.ctx.auth.bindings_reached(revision).await;
        Ok(pb::DeleteRoleBindingResponse {
            role_binding: Some(pb::RoleBinding::from(&b)),
        })
    }
}

/// The key of a binding and how messages name it; an empty namespace is cluster-wide.
fn binding_key(namespace: &str, name: &str) -> Result<(String, String)> {
    if !namespace.is_empty() {
        args::namespace(namespace)?;
    }
    let key = RoleBindingKey::of(namespace, name)?.format();
    let meta = ObjectMeta::namespaced(namespace, name);
    Ok((key, format!("role binding {}", meta.key())))
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn create_role_binding(
        &self,
        req: Request<pb::CreateRoleBindingRequest>,
    ) -> Result<Response<pb::RoleBinding>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let p = req
            .into_inner()
            .role_binding
            .ok_or_else(|| Status::invalid_argument("role_binding: required"))?;
        // Cluster-wide bindings have an empty namespace: no default applies.
        let (ns, name) = p
            .meta
            .as_ref()
            .map(|m| (m.namespace.clone(), m.name.clone()))
            .unwrap_or_default();
        // Nobody grants what they could not do themselves: host-user needs host identities.
        if p.role == Role::HostUser.as_str()
            && !caller.can(Verb::Create, Resource::HostIdentities, &ns)
        {
            return Err(Status::permission_denied(
                "role: granting host-user needs a cluster admin (or host-user where it is \
                 granted): it lets replicas run as any host user, root included",
            ));
        }
        let call = async { Ok(self.create(p).await?) };
        let b = caller
            .audited(Verb::Create, Resource::RoleBindings, &ns, &name, call)
            .await?;
        Ok(Response::new(b))
    }

    async fn get_role_binding(
        &self,
        req: Request<pb::GetRoleBindingRequest>,
    ) -> Result<Response<pb::RoleBinding>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        caller.check(Verb::Get, Resource::RoleBindings, &req.namespace)?;
        Ok(Response::new(self.get(&req.namespace, &req.name).await?))
    }

    async fn list_role_bindings(
        &self,
        req: Request<pb::ListRoleBindingsRequest>,
    ) -> Result<Response<pb::ListRoleBindingsResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let visible = if req.all_namespaces {
            Visible::of(&caller, Verb::List, Resource::RoleBindings, "", true)?
        } else {
            caller.check(Verb::List, Resource::RoleBindings, &req.namespace)?;
            Visible::All
        };
        Ok(Response::new(self.list(&req, &visible).await?))
    }

    async fn delete_role_binding(
        &self,
        req: Request<pb::DeleteRoleBindingRequest>,
    ) -> Result<Response<pb::DeleteRoleBindingResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let call = async { Ok(self.delete(&req.namespace, &req.name).await?) };
        let b = caller
            .audited(
                Verb::Delete,
                Resource::RoleBindings,
                &req.namespace,
                &req.name,
                call,
            )
            .await?;
        Ok(Response::new(b))
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let ns = or_default(&req.get_ref().namespace).to_string();
        let allowed = permissions()
            .filter(|(v, r)| caller.can(*v, *r, if r.cluster_scoped() { "" } else { &ns }))
            .map(|(v, r)| format!("{v} {r}"))
            .collect();
        Ok(Response::new(pb::WhoAmIResponse {
            user: caller.subject.user.clone(),
            groups: caller.subject.groups.clone(),
            allowed,
        }))
    }
}
