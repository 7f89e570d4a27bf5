//! End to end against a real kube-apiserver, a real uni-scheduler and real etcd: resources
//! applied with kubectl become Universal workloads placed on (simulated) nodes, their status
//! flows back, scaling and spec edits reach Universal, deletion goes through the finalizer,
//! and a workload deleted behind the operator's back comes back.

mod support;

use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use support::universal::NODES;
use support::{eventually, Cluster};
use uni_operator::crd::status::condition;
use uni_operator::crd::{InferenceService, Queue, TrainingJob, WorkloadStatus};
use uni_operator::labels;
use uni_proto::v1 as pb;

const NS: &str = "team-a";

const RESOURCES: &str = r#"
apiVersion: universal.dev/v1alpha1
kind: Queue
metadata:
  name: research
spec:
  guaranteed: {compute: "8", memory: 32Gi}
  max: {compute: "48", memory: 192Gi, devices: 4}
  priority: 700
---
apiVersion: universal.dev/v1alpha1
kind: InferenceService
metadata:
  name: chat
  namespace: team-a
  labels: {app: chat}
spec:
  replicas: 1
  port: 8000
  queue: research
  template:
    command: ["/usr/bin/serve", "--model", "llama"]
    env: [{name: MODEL_DIR, value: /models}]
    resources:
      compute: 500m
      memory: 1Gi
---
apiVersion: universal.dev/v1alpha1
kind: TrainingJob
metadata:
  name: finetune
  namespace: team-a
spec:
  workers: 2
  preemptible: true
  template:
    command: ["torchrun", "train.py"]
    resources:
      compute: "4"
      memory: 16Gi
      accelerator:
        memory: 40Gi
        interconnect: NVLink
"#;

fn is_true(s: &WorkloadStatus, t: &str) -> bool {
    s.conditions
        .iter()
        .any(|c| c.type_ == t && c.status == "True")
}

/// Waits until the resource's status says Scheduled and Ready for its current generation
/// with `replicas` placements on simulated nodes; returns the status.
async fn wait_ready<K>(api: &Api<K>, name: &str, replicas: u32) -> WorkloadStatus
where
    K: kube::Resource<DynamicType = ()> + uni_operator::convert::WorkloadResource,
{
    eventually(
        &format!("{name} to be Scheduled and Ready with {replicas} replicas"),
        || async {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            let status = obj.workload_status().cloned().unwrap_or_default();
            let ok = status.observed_generation == obj.meta().generation
                && is_true(&status, condition::ACCEPTED)
                && is_true(&status, condition::SCHEDULED)
                && is_true(&status, condition::READY)
                && status.ready_replicas == Some(replicas)
                && status.placements.len() == replicas as usize
                && status
                    .placements
                    .iter()
                    .all(|p| NODES.contains(&p.node.as_str()))
                && status
                    .conditions
                    .iter()
                    .all(|c| c.observed_generation == obj.meta().generation);
            if ok {
                Ok(status)
            } else {
                Err(format!(
                    "{status:?} at generation {:?}",
                    obj.meta().generation
                ))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_scale_edit_delete_and_recreate() {
    let cluster = Cluster::start().await;
    let _operator = cluster.operator("operator-0");
    cluster.namespace(NS).await;
    cluster.apply(RESOURCES).await;
    let u = &cluster.universal;
    let services: Api<InferenceService> = Api::namespaced(cluster.client.clone(), NS);
    let jobs: Api<TrainingJob> = Api::namespaced(cluster.client.clone(), NS);
    let queues: Api<Queue> = Api::all(cluster.client.clone());

    // The queue is mirrored first-class.
    let queue = eventually("queue research in Universal", || async {
        let q = u
            .queues()
            .await
            .get_queue(pb::GetQueueRequest {
                name: "research".into(),
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        Ok(q)
    })
    .await;
    assert_eq!(queue.spec.and_then(|s| s.priority), Some(700));

    // Both workloads reach Universal, are placed on simulated nodes, and report back.
    let chat = wait_ready(&services, "chat", 1).await;
    let job = wait_ready(&jobs, "finetune", 2).await;
    assert_eq!(chat.phase.as_deref(), Some("Ready"));
    assert_eq!(job.phase.as_deref(), Some("Running"));
    // The service's endpoint under Universal's gateway; a job has none.
    let endpoint = chat.endpoint.clone().unwrap_or_default();
    assert!(
        endpoint.starts_with("https://127.0.0.1:") && endpoint.ends_with(&format!("/{NS}/chat/")),
        "{endpoint}"
    );
    assert_eq!(job.endpoint, None);
    // Two workers with 40Gi of NVLink-joined accelerator memory only fit the GPU node.
    assert!(
        job.placements.iter().all(|p| p.node == "sim-gpu-a"),
        "{job:?}"
    );
    assert!(job.placements.iter().all(|p| !p.devices.is_empty()));

    let w = u
        .get(NS, "chat")
        .await
        .expect("get")
        .expect("chat in universal");
    let meta = w.meta.clone().expect("meta");
    assert_eq!(meta.labels[labels::MANAGED_BY], labels::OPERATOR);
    assert_eq!(meta.labels["app"], "chat");
    let cr = services.get("chat").await.expect("chat");
    assert_eq!(meta.annotations[labels::OWNER_UID], cr.uid().expect("uid"));
    let Some(pb::workload::Spec::Inference(spec)) = &w.spec else {
        panic!("inference spec expected");
    };
    assert_eq!(spec.queue, "research");
    assert_eq!(spec.port, 8000);
    assert!(cr.finalizers().iter().any(|f| f == labels::FINALIZER));

    // Scale through the scale subresource: Universal scales, status follows.
    cluster
        .kube
        .kubectl_ok(
            &["-n", NS, "scale", "inferenceservice/chat", "--replicas=3"],
            None,
        )
        .await;
    let scaled = wait_ready(&services, "chat", 3).await;
    assert_eq!(scaled.desired_replicas, Some(3));
    let w = u.get(NS, "chat").await.expect("get").expect("chat");
    let placed = u
        .allocations()
        .await
        .into_iter()
        .filter(|a| a.namespace == NS && a.workload == "chat")
        .count();
    assert_eq!(placed, 3, "one allocation per replica: {w:?}");

    // A spec edit becomes a Universal update (same uid, new spec).
    cluster
        .kube
        .kubectl_ok(
            &[
                "-n",
                NS,
                "patch",
                "inferenceservice/chat",
                "--type=merge",
                "-p",
                r#"{"spec":{"template":{"resources":{"memory":"2Gi"}}}}"#,
            ],
            None,
        )
        .await;
    let updated = eventually("chat's memory update in Universal", || async {
        let w = u.get(NS, "chat").await?.ok_or("missing")?;
        match &w.spec {
            Some(pb::workload::Spec::Inference(s))
                if s.template
                    .as_ref()
                    .and_then(|t| t.resources.as_ref())
                    .is_some_and(|r| r.memory == "2Gi" || r.memory == "2147483648") =>
            {
                Ok(w)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(updated.meta.as_ref().map(|m| &m.uid), Some(&meta.uid));
    wait_ready(&services, "chat", 3).await;

    // Deleted behind the operator's back: the resource is the source of truth.
    let old_uid = u
        .get(NS, "finetune")
        .await
        .expect("get")
        .and_then(|w| w.meta)
        .map(|m| m.uid)
        .expect("finetune uid");
    u.workloads()
        .await
        .delete_workload(pb::DeleteWorkloadRequest {
            namespace: NS.into(),
            name: "finetune".into(),
            ..Default::default()
        })
        .await
        .expect("delete behind the operator's back");
    eventually("finetune to be recreated in Universal", || async {
        let w = u.get(NS, "finetune").await?.ok_or("still missing")?;
        let uid = w.meta.map(|m| m.uid).unwrap_or_default();
        if uid != old_uid {
            Ok(())
        } else {
            Err("old incarnation".to_string())
        }
    })
    .await;
    // The status may still describe the old incarnation for a moment.
    eventually("finetune's status to name its new incarnation", || async {
        let job = wait_ready(&jobs, "finetune", 2).await;
        if job.universal_uid.as_deref() == Some(old_uid.as_str()) {
            Err("old incarnation".to_string())
        } else {
            Ok(())
        }
    })
    .await;

    // Events tell the story.
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), NS);
    let reasons = eventually("events for chat and finetune", || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let reasons: Vec<(String, String)> = list
            .items
            .iter()
            .map(|e| {
                (
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.clone())
                        .unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                )
            })
            .collect();
        let has = |n: &str, r: &str| reasons.iter().any(|(a, b)| a == n && b == r);
        if ["Created", "Scheduled", "Ready", "Scaled", "Updated"]
            .iter()
            .all(|r| has("chat", r))
            && has("finetune", "Recreated")
        {
            Ok(reasons)
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    assert!(!reasons.is_empty());

    // Delete: the finalizer removes the Universal workload, then the resource goes.
    cluster
        .kube
        .kubectl_ok(
            &["-n", NS, "delete", "inferenceservice/chat", "--wait=false"],
            None,
        )
        .await;
    eventually("chat to be gone from Kubernetes", || async {
        match services.get_opt("chat").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(obj) => Err(format!("still there, finalizers {:?}", obj.finalizers())),
        }
    })
    .await;
    // The finalizer is only removed once Universal no longer has the workload.
    assert!(u.get(NS, "chat").await.expect("get").is_none());
    assert!(u.get(NS, "finetune").await.expect("get").is_some());

    cluster
        .kube
        .kubectl_ok(
            &[
                "-n",
                NS,
                "delete",
                "trainingjob/finetune",
                "--wait=true",
                "--timeout=120s",
            ],
            None,
        )
        .await;
    assert!(u.get(NS, "finetune").await.expect("get").is_none());
    assert!(u.list(NS).await.is_empty());

    // The queue goes too, once nothing uses it.
    cluster
        .kube
        .kubectl_ok(
            &["delete", "queue/research", "--wait=true", "--timeout=120s"],
            None,
        )
        .await;
    assert!(queues.get_opt("research").await.expect("get").is_none());
    let gone = u
        .queues()
        .await
        .get_queue(pb::GetQueueRequest {
            name: "research".into(),
        })
        .await;
    assert_eq!(
        gone.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::NotFound)
    );
}
