//! The step driver every mirrored kind shares: observe Universal, ask the decision core for
//! the next step, take it, and repeat until in sync; then write the status and publish events
//! for what changed. Idempotent and level-triggered: it reads everything it acts on and can
//! be re-run at any time, after any crash. A kind supplies only what differs: [`Mirror`].

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tonic::Status;
use tracing::{debug, info};

use super::context::Context;
use super::decide::{decide, Observed, ResourceState, Step, Wanted};
use super::events::{for_transitions, Note};
use super::finalizer;
use super::refusal::{refusal, Refusal};
use super::status::Verdict;
use crate::convert::Counts;
use crate::error::{Error, Result};
use crate::labels;
use crate::universal::Universal;

/// Steps taken in one reconcile before giving up and retrying later (each step changes
/// something, so a healthy reconcile needs at most three: finalizer, create, done).
const MAX_STEPS: usize = 6;

/// A resource kind mirrored into Universal.
pub trait Mirror: Sync {
    type Resource: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync;
    /// The Universal object it is mirrored as.
    type Object: Send + Sync;
    type Status: Serialize + PartialEq + Send + Sync;

    fn resource(&self) -> &Self::Resource;
    fn api(&self) -> &Api<Self::Resource>;
    /// What the resource asks for; Err says why it cannot be mirrored.
    fn wanted(&self) -> Result<Wanted<'_>, &str>;
    fn observe(object: &Self::Object) -> Observed;
    /// The event announcing a step taken, if this kind publishes one.
    fn note(&self, step: &Step) -> Option<Note>;
    /// The status on the resource as read.
    fn written(&self) -> Option<&Self::Status>;

    /// The resource records a finished run (see [`ResourceState::finished`]).
    fn finished(&self) -> bool {
        false
    }
    /// The status for an outcome (`observed`: the Universal object, None if absent or not ours).
    fn status(
        &self,
        verdict: &Verdict,
        observed: Option<&Self::Object>,
        now: &Time,
    ) -> Self::Status;
    fn conditions(status: &Self::Status) -> &[Condition];

    fn get(&self, u: &Universal) -> impl Future<Output = Result<Option<Self::Object>>> + Send;
    fn create(&self, u: &Universal) -> impl Future<Output = Result<Self::Object, Status>> + Send;
    fn update(
        &self,
        u: &Universal,
        expected: i64,
    ) -> impl Future<Output = Result<Self::Object, Status>> + Send;
    fn scale(
        &self,
        u: &Universal,
        counts: Counts,
        expected: i64,
    ) -> impl Future<Output = Result<Self::Object, Status>> + Send;
    fn delete(&self, u: &Universal, expected: i64)
        -> impl Future<Output = Result<Deletion>> + Send;
}

/// What a delete did in Universal.
pub enum Deletion {
    /// Deletion is under way; observe again.
    Requested,
    /// Universal keeps its object (the built-in default queue): release the resource now.
    Kept,
}

/// Reconciles one resource; a success resets its backoff.
pub async fn reconcile<M: Mirror>(mirror: &M, ctx: &Context) -> Result<Action> {
    let obj = mirror.resource();
    let mut driver = Driver {
        mirror,
        ctx,
        label: label(obj),
        has_finalizer: finalizer::has(obj),
        notes: Vec::new(),
    };
    let action = driver.run().await?;
    ctx.backoff.succeeded(obj);
    Ok(action)
}

/// "InferenceService team-a/chat", "Queue research": for logs and retry reasons.
fn label<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let kind = K::kind(&());
    match obj.namespace() {
        Some(ns) => format!("{kind} {ns}/{}", obj.name_any()),
        None => format!("{kind} {}", obj.name_any()),
    }
}

/// What to do after a step.
enum Next<O> {
    Again,
    /// Settled: write this outcome to the status.
    Settled(Verdict, Option<O>),
    /// Nothing to write: return this.
    Done(Action),
}

struct Driver<'a, M: Mirror> {
    mirror: &'a M,
    ctx: &'a Context,
    label: String,
    has_finalizer: bool,
    /// Events for the steps taken, published once the reconcile gets through.
    notes: Vec<Note>,
}

impl<M: Mirror> Driver<'_, M> {
    async fn run(&mut self) -> Result<Action> {
        let deleting = self.mirror.resource().meta().deletion_timestamp.is_some();
        for _ in 0..MAX_STEPS {
            let current = self.mirror.get(&self.ctx.universal).await?;
            let observed = current.as_ref().map(M::observe);
            let state = ResourceState {
                deleting,
                has_finalizer: self.has_finalizer,
                finished: self.mirror.finished(),
            };
            let step = decide(state, self.mirror.wanted(), observed.as_ref());
            debug!(object = %self.label, ?step, "reconcile step");
            match self.take(&step, current).await? {
                Next::Again => {}
                Next::Settled(verdict, observed) => return self.finish(verdict, observed).await,
                Next::Done(action) => return Ok(action),
            }
        }
        Err(Error::Retry {
            reason: format!("{} did not settle", self.label),
            after: self.ctx.poll,
        })
    }

    async fn take(&mut self, step: &Step, current: Option<M::Object>) -> Result<Next<M::Object>> {
        let u = &self.ctx.universal;
        let written = match step {
            Step::AddFinalizer => {
                finalizer::add(self.mirror.api(), self.mirror.resource()).await?;
                self.has_finalizer = true;
                return Ok(Next::Again);
            }
            Step::Create => self.mirror.create(u).await,
            Step::Update { expected } => self.mirror.update(u, *expected).await,
            Step::Scale { counts, expected } => self.mirror.scale(u, *counts, *expected).await,
            Step::Delete { expected } => {
                return match self.mirror.delete(u, *expected).await {
                    Ok(Deletion::Requested) => {
                        self.took(step);
                        Ok(Next::Again)
                    }
                    Ok(Deletion::Kept) => self.release().await.map(Next::Done),
                    Err(Error::Universal(s)) if refusal(step, s.code()) == Refusal::InUse => {
                        Err(self.in_use(s).await)
                    }
                    Err(e) => Err(e),
                };
            }
            Step::InSync => return Ok(Next::Settled(Verdict::Accepted, current)),
            Step::Reject { message } => {
                return Ok(Next::Settled(rejected("InvalidSpec", message), current))
            }
            // Not ours: the status shows none of it.
            Step::Conflict { message } => {
                return Ok(Next::Settled(rejected("NameConflict", message), None))
            }
            Step::WaitForDeletion => return Ok(Next::Done(Action::requeue(self.ctx.poll))),
            Step::RemoveFinalizer => return self.release().await.map(Next::Done),
            Step::Nothing | Step::Finished => return Ok(Next::Done(Action::await_change())),
        };
        match written {
            Ok(object) => {
                self.took(step);
                Ok(Next::Settled(Verdict::Accepted, Some(object)))
            }
            Err(s) => match refusal(step, s.code()) {
                Refusal::Reobserve => Ok(Next::Again),
                Refusal::Reject(reason) => {
                    Ok(Next::Settled(rejected(reason, s.message()), current))
                }
                Refusal::InUse | Refusal::Fail => Err(s.into()),
            },
        }
    }

    /// Records a step that changed Universal.
    fn took(&mut self, step: &Step) {
        info!(object = %self.label, ?step, "mirrored to universal");
        self.notes.extend(self.mirror.note(step));
    }

    /// Removes the finalizer, letting Kubernetes delete the resource.
    async fn release(&mut self) -> Result<Action> {
        finalizer::remove(self.mirror.api(), self.mirror.resource()).await?;
        info!(object = %self.label, "finalizer removed");
        self.notes.extend(self.mirror.note(&Step::RemoveFinalizer));
        self.publish().await;
        Ok(Action::await_change())
    }

    /// Warns that deletion waits for the object's dependents; the error retries at resync.
    async fn in_use(&mut self, s: Status) -> Error {
        let kind = M::Resource::kind(&());
        self.notes.push(Note {
            warning: true,
            reason: format!("{kind}InUse"),
            action: "Delete",
            message: s.message().to_string(),
        });
        self.publish().await;
        Error::Retry {
            reason: format!("{} is still in use", self.label),
            after: self.ctx.resync,
        }
    }

    async fn finish(&mut self, verdict: Verdict, observed: Option<M::Object>) -> Result<Action> {
        let previous = self.mirror.written();
        let now = Time(Timestamp::now());
        let status = self.mirror.status(&verdict, observed.as_ref(), &now);
        if previous != Some(&status) {
            write_status(self.mirror.api(), self.mirror.resource(), &status).await?;
            let before = previous.map_or(&[][..], M::conditions);
            self.notes
                .extend(for_transitions(before, M::conditions(&status)));
        }
        self.publish().await;
        Ok(Action::requeue(self.ctx.resync))
    }

    async fn publish(&mut self) {
        let regarding = self.mirror.resource().object_ref(&());
        for note in std::mem::take(&mut self.notes) {
            self.ctx.publish(&regarding, note).await;
        }
    }
}

fn rejected(reason: &str, message: &str) -> Verdict {
    Verdict::Rejected {
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// Writes the status with server-side apply: fields the operator no longer sets (a
/// placement that went away) are removed, and nobody else's fields are touched.
async fn write_status<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(labels::OPERATOR).force();
    api.patch_status(&obj.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}
