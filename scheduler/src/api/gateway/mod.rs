//! AgentGatewayService: node agents' only way to the store. A node credential reaches its
//! own node key, its own allocations, the workloads and statuses of replicas it runs, and
//! leases it holds ([`confine`]); cluster administrators (the simulated fleets of the
//! benchmarks) reach every node's keys. Bootstrap-token holders exchange a CSR for a node
//! certificate; nodes renew theirs.

mod confine;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uni_core::model::{Allocation, Resource, Verb};
use uni_core::store::keys::{AllocationKey, NodeKey, TypedKey};
use uni_core::store::remote::wire::{
    events_to_wire, kv_to_wire, status_of, txn_from_wire, txn_response_to_wire,
};
use uni_core::store::{codec, Compare, CompareOp, LeaseId, Pager, RangeOptions, TxnOp};
use uni_core::tls::node_server_name;
use uni_core::tls::pki::CsrUsage;
use uni_proto::v1 as pb;
use uni_proto::v1::agent_gateway_service_server::AgentGatewayService;

use super::ApiContext;
use crate::auth::subject::{BOOTSTRAPPERS_GROUP, NODES_GROUP, NODE_USER_PREFIX};
use crate::auth::Caller;
use confine::{
    classify, node_write_refusal, own_status, prefix_allowed, status_names, visible, KeyClass,
};

/// Lifetime of a node certificate; agents renew after two thirds of it.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most leases one node may hold from this replica at once (an agent needs one).
const MAX_LEASES_PER_NODE: usize = 16;
/// Most keys in one range through the gateway; agents page (and their pager shrinks pages of
/// large values below the 16 MiB the agent accepts).
const GATEWAY_PAGE: usize = 1000;

/// Whose keys a caller reaches.
enum Scope {
    Fleet,
    Node(String),
}

pub struct GatewayApi {
    ctx: ApiContext,
    /// Leases granted through this replica, by node.
    leases: Mutex<HashMap<LeaseId, String>>,
}

fn denied(node: &str, what: impl std::fmt::Display) -> Status {
    Status::permission_denied(format!("node {node:?} may not {what}"))
}

impl GatewayApi {
    pub fn new(ctx: ApiContext) -> Self {
        Self {
            ctx,
            leases: Mutex::new(HashMap::new()),
        }
    }

    async fn scope<T>(&self, req: &Request<T>) -> Result<(Caller, Scope), Status> {
        let caller = self.ctx.auth.caller(req).await?;
        if let Some(node) = caller.subject.node() {
            let node = node.to_string();
            return Ok((caller, Scope::Node(node)));
        }
        if caller.can(Verb::Drain, Resource::Nodes, "") {
            return Ok((caller, Scope::Fleet));
        }
        Err(Status::permission_denied(format!(
            "user {:?} is not a node: the agent gateway serves node credentials \
             (CN {NODE_USER_PREFIX}NAME, O {NODES_GROUP}) and cluster administrators",
            caller.subject.user
        )))
    }

    /// Whether one of `node`'s allocations runs `namespace/name`.
    async fn runs_here(&self, node: &str, namespace: &str, name: &str) -> Result<bool, Status> {
        let mut pager = Pager::new(AllocationKey::node_prefix(node), GATEWAY_PAGE);
        while let Some(page) = pager
            .next(&*self.ctx.store)
            .await
            .map_err(|e| status_of(&e))?
        {
            if page.kvs.iter().any(|kv| {
                codec::decode::<Allocation>(&kv.key, &kv.value)
                    .is_ok_and(|a| a.namespace == namespace && a.workload == name)
            }) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn may_read(&self, node: &str, key: &str) -> Result<(), Status> {
        match classify(node, key) {
            KeyClass::OwnNode | KeyClass::OwnAllocation => Ok(()),
            KeyClass::Workload { namespace, name } | KeyClass::Status { namespace, name }
                if self.runs_here(node, &namespace, &name).await? =>
            {
                Ok(())
            }
            _ => Err(denied(node, format_args!("read {key}"))),
        }
    }

    /// Whether `node` holds `lease`: granted through this replica, or carried by its node key
    /// (after a reconnect to another replica).
    /// Admits the caller to act on `lease`: the fleet on any, a node only on its own.
    async fn held<T>(&self, req: &Request<T>, lease: LeaseId, action: &str) -> Result<(), Status> {
        match self.scope(req).await? {
            (_, Scope::Node(node)) if !self.holds(&node, lease).await? => {
                Err(denied(&node, format_args!("{action} lease {lease}")))
            }
            _ => Ok(()),
        }
    }

    async fn holds(&self, node: &str, lease: LeaseId) -> Result<bool, Status> {
        if self
            .leases
            .lock()
            .expect("leases")
            .get(&lease)
            .is_some_and(|n| n == node)
        {
            return Ok(true);
        }
        let key = NodeKey::new(node).map_err(|e| status_of(&e))?.format();
        let kv = self.ctx.store.get(&key).await.map_err(|e| status_of(&e))?;
        Ok(kv.is_some_and(|kv| kv.lease == lease))
    }

    /// Checks a node's transaction, adding the compares that pin what was checked.
    async fn confine_txn(&self, node: &str, txn: &mut uni_core::store::Txn) -> Result<(), Status> {
        for c in &txn.compares {
            match classify(node, &c.key) {
                KeyClass::OwnNode | KeyClass::OwnAllocation | KeyClass::OtherAllocation => {}
                KeyClass::Status { namespace, name }
                    if self.runs_here(node, &namespace, &name).await? => {}
                _ => return Err(denied(node, format_args!("compare {}", c.key))),
            }
        }
        let mut pins = Vec::new();
        for op in txn.success.iter().chain(&txn.failure) {
            match op {
                TxnOp::Get { key } => self.may_read(node, key).await?,
                TxnOp::Put { key, value, lease } => match classify(node, key) {
                    KeyClass::OwnNode => {
                        if let Some(why) = node_write_refusal(node, key, value) {
                            return Err(Status::permission_denied(why));
                        }
                        if *lease != 0 && !self.holds(node, *lease).await? {
                            return Err(denied(node, format_args!("attach lease {lease}")));
                        }
                    }
                    KeyClass::Status { .. } => {
                        let status =
                            own_status(node, key, value).map_err(Status::permission_denied)?;
                        if *lease != 0 {
                            return Err(denied(node, "attach a lease to a replica status"));
                        }
                        let alloc = AllocationKey::new(node, status.allocation_id.as_str())
                            .map_err(|e| status_of(&e))?
                            .format();
                        let allocated = self
                            .ctx
                            .store
                            .get(&alloc)
                            .await
                            .map_err(|e| status_of(&e))?
                            .is_some();
                        let current = self.ctx.store.get(key).await.map_err(|e| status_of(&e))?;
                        let reported_here = current
                            .as_ref()
                            .is_some_and(|kv| status_names(node, key, &kv.value));
                        if !allocated && !reported_here {
                            return Err(denied(
                                node,
                                format_args!(
                                    "report {key}: allocation {} is not its",
                                    status.allocation_id
                                ),
                            ));
                        }
                        pins.push(pin(key, current.as_ref().map(|kv| kv.mod_revision)));
                    }
                    _ => return Err(denied(node, format_args!("write {key}"))),
                },
                TxnOp::Delete { key } => match classify(node, key) {
                    KeyClass::OwnNode => {}
                    KeyClass::Status { .. } => {
                        let current = self.ctx.store.get(key).await.map_err(|e| status_of(&e))?;
                        if let Some(kv) = &current {
                            if !status_names(node, key, &kv.value) {
                                return Err(denied(
                                    node,
                                    format_args!("delete {key}: another node's report"),
                                ));
                            }
                        }
                        pins.push(pin(key, current.as_ref().map(|kv| kv.mod_revision)));
                    }
                    _ => return Err(denied(node, format_args!("delete {key}"))),
                },
            }
        }
        // What was checked must still hold when the transaction runs; if it changed, the
        // transaction fails and the agent looks again, as after any lost race.
        txn.compares.extend(pins);
        Ok(())
    }

    fn sign(&self, node: &str, csr_pem: &str) -> Result<pb::JoinNodeResponse, Status> {
        let ca = self.ctx.auth.signer().ok_or_else(|| {
            Status::failed_precondition(
                "this scheduler issues no node certificates (start it with ca-key)",
            )
        })?;
        NodeKey::new(node).map_err(|e| Status::invalid_argument(format!("node_name: {e}")))?;
        let cn = format!("{NODE_USER_PREFIX}{node}");
        // Never a name the node asks for: it could be the API's.
        let server_names = [node_server_name(node)];
        let usage = CsrUsage {
            common_name: &cn,
            group: Some(NODES_GROUP),
            server_names: &server_names,
        };
        let certificate_pem = ca
            .sign_csr(csr_pem, &usage, NODE_CERT_VALIDITY)
            .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
        Ok(pb::JoinNodeResponse {
            certificate_pem,
            ca_pem: ca.cert_pem().to_string(),
        })
    }
}

/// A compare that holds while `key` is as it was read (`None`: absent).
fn pin(key: &str, mod_revision: Option<i64>) -> Compare {
    match mod_revision {
        Some(r) => Compare::mod_revision(key, CompareOp::Equal, r),
        None => Compare::absent(key),
    }
}

type WatchResponseStream = Pin<Box<dyn Stream<Item = Result<pb::KvWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AgentGatewayService for GatewayApi {
    async fn get(
        &self,
        req: Request<pb::KvGetRequest>,
    ) -> Result<Response<pb::KvGetResponse>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let key = req.into_inner().key;
        if let Scope::Node(node) = &scope {
            self.may_read(node, &key).await?;
        }
        let kv = self.ctx.store.get(&key).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::KvGetResponse {
            kv: kv.as_ref().map(kv_to_wire),
        }))
    }

    async fn range(
        &self,
        req: Request<pb::KvRangeRequest>,
    ) -> Result<Response<pb::KvRangeResponse>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let req = req.into_inner();
        if let Scope::Node(node) = &scope {
            if !prefix_allowed(node, &req.prefix) {
                return Err(denied(node, format_args!("list {}", req.prefix)));
            }
        }
        let opts = RangeOptions {
            start_after: req.start_after,
            // Every read is paged, whatever the agent asks.
            limit: Some(
                req.limit
                    .map_or(GATEWAY_PAGE, |l| usize::try_from(l).unwrap_or(GATEWAY_PAGE))
                    .clamp(1, GATEWAY_PAGE),
            ),
        };
        let r = self
            .ctx
            .store
            .range(&req.prefix, opts)
            .await
            .map_err(|e| status_of(&e))?;
        let kvs = r
            .kvs
            .iter()
            .filter(|kv| match &scope {
                Scope::Node(node) => visible(node, &kv.key),
                Scope::Fleet => true,
            })
            .map(kv_to_wire)
            .collect();
        Ok(Response::new(pb::KvRangeResponse {
            kvs,
            more: r.more,
            revision: r.revision,
        }))
    }

    async fn txn(
        &self,
        req: Request<pb::KvTxnRequest>,
    ) -> Result<Response<pb::KvTxnResponse>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let mut txn = txn_from_wire(req.into_inner())?;
        if let Scope::Node(node) = &scope {
            self.confine_txn(node, &mut txn).await?;
        }
        let r = self.ctx.store.txn(txn).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(txn_response_to_wire(&r)))
    }

    type WatchStream = WatchResponseStream;

    async fn watch(
        &self,
        req: Request<pb::KvWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let req = req.into_inner();
        let node = match scope {
            Scope::Node(node) => {
                if !prefix_allowed(&node, &req.prefix) {
                    return Err(denied(&node, format_args!("watch {}", req.prefix)));
                }
                Some(node)
            }
            Scope::Fleet => None,
        };
        let slot = self.ctx.limits.watch_slot()?;
        let stream = self
            .ctx
            .store
            .watch(&req.prefix, req.from)
            .await
            .map_err(|e| status_of(&e))?;
        let out = stream.filter_map(move |batch| {
            let node = node.clone();
            // The slot is held for as long as the stream lives.
            let _slot = &slot;
            async move {
                match batch {
                    Ok(mut events) => {
                        if let Some(node) = &node {
                            events.retain(|e| visible(node, &e.kv.key));
                        }
                        (!events.is_empty()).then(|| Ok(events_to_wire(&events)))
                    }
                    Err(e) => Some(Err(status_of(&e))),
                }
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let ttl = Duration::from_secs(req.get_ref().ttl_seconds.clamp(1, 3600).into());
        if let Scope::Node(node) = &scope {
            let held = self
                .leases
                .lock()
                .expect("leases")
                .values()
                .filter(|n| *n == node)
                .count();
            if held >= MAX_LEASES_PER_NODE {
                return Err(Status::resource_exhausted(format!(
                    "node {node:?} holds {held} leases through this replica; revoke some"
                )));
            }
        }
        let lease = self
            .ctx
            .store
            .lease_grant(ttl)
            .await
            .map_err(|e| status_of(&e))?;
        if let Scope::Node(node) = scope {
            self.leases.lock().expect("leases").insert(lease, node);
        }
        Ok(Response::new(pb::LeaseGrantResponse { lease }))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<pb::LeaseKeepAliveRequest>,
    ) -> Result<Response<pb::LeaseKeepAliveResponse>, Status> {
        let lease = req.get_ref().lease;
        self.held(&req, lease, "renew").await?;
        let ttl = self.ctx.store.lease_keep_alive(lease).await.map_err(|e| {
            if matches!(e, uni_core::Error::LeaseNotFound(_)) {
                self.leases.lock().expect("leases").remove(&lease);
            }
            status_of(&e)
        })?;
        Ok(Response::new(pb::LeaseKeepAliveResponse {
            ttl_seconds: ttl.as_secs() as u32,
        }))
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let lease = req.get_ref().lease;
        self.held(&req, lease, "revoke").await?;
        self.ctx
            .store
            .lease_revoke(lease)
            .await
            .map_err(|e| status_of(&e))?;
        self.leases.lock().expect("leases").remove(&lease);
        Ok(Response::new(pb::LeaseRevokeResponse {}))
    }

    async fn revision(
        &self,
        req: Request<pb::RevisionRequest>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        self.scope(&req).await?;
        let revision = self.ctx.store.revision().await.map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::RevisionResponse { revision }))
    }

    async fn join_node(
        &self,
        req: Request<pb::JoinNodeRequest>,
    ) -> Result<Response<pb::JoinNodeResponse>, Status> {
        let caller = self.ctx.auth.caller(&req).await?;
        let req = req.into_inner();
        let allowed = caller.subject.in_group(BOOTSTRAPPERS_GROUP)
            || caller.can(Verb::Drain, Resource::Nodes, "");
        let call = async {
            if !allowed {
                return Err(Status::permission_denied(format!(
                    "user {:?} may not join nodes: use a bootstrap token (group {BOOTSTRAPPERS_GROUP})",
                    caller.subject.user
                )));
            }
            // A registered node renews with its certificate; joining again under its name
            // would let a bootstrap token impersonate it.
            let key = NodeKey::new(req.node_name.as_str())
                .map_err(|e| Status::invalid_argument(format!("node_name: {e}")))?
                .format();
            if self
                .ctx
                .store
                .get(&key)
                .await
                .map_err(|e| status_of(&e))?
                .is_some()
            {
                return Err(Status::already_exists(format!(
                    "node {:?} is registered; its agent renews its certificate instead",
                    req.node_name
                )));
            }
            self.sign(&req.node_name, &req.csr_pem)
        };
        let r = caller
            .audited_unchecked(Verb::Create, Resource::Nodes, "", &req.node_name, call)
            .await?;
        Ok(Response::new(r))
    }

    async fn renew_node_certificate(
        &self,
        req: Request<pb::RenewNodeCertificateRequest>,
    ) -> Result<Response<pb::JoinNodeResponse>, Status> {
        let (_, scope) = self.scope(&req).await?;
        let Scope::Node(node) = scope else {
            return Err(Status::permission_denied(
                "only a node renews its own certificate",
            ));
        };
        let req = req.into_inner();
        Ok(Response::new(self.sign(&node, &req.csr_pem)?))
    }
}
