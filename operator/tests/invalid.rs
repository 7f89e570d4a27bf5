//! Invalid resources: what the CRD's OpenAPI schema (with CEL rules) can judge is refused by
//! the API server; what only Universal can judge is reported in the resource's status with
//! the reason, and Universal keeps what it had.

mod support;

use kube::Api;
use support::{eventually, Cluster};
use uni_operator::crd::status::condition;
use uni_operator::crd::{InferenceService, WorkloadStatus};
use uni_operator::labels;
use uni_proto::v1 as pb;

const NS: &str = "invalid";

fn service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: universal.dev/v1alpha1\nkind: InferenceService\nmetadata:\n  name: {name}\n  \
         namespace: {NS}\nspec:\n{spec}"
    )
}

const TEMPLATE: &str =
    "  template:\n    command: [\"/usr/bin/serve\"]\n    resources: {compute: 500m, memory: 1Gi}\n";

fn condition_of<'a>(s: &'a WorkloadStatus, t: &str) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rejects_and_status_reports() {
    let cluster = Cluster::start().await;
    let _operator = cluster.operator("operator-0");
    cluster.namespace(NS).await;

    // Refused by the API server: nothing is stored, the operator never sees them.
    let refused = [
        (
            service("no-compute", "  template:\n    command: [serve]\n    resources: {memory: 1Gi}\n"),
            "spec.template.resources.compute: Required value",
        ),
        (
            service("bad-quantity", "  template:\n    command: [serve]\n    resources: {compute: lots, memory: 1Gi}\n"),
            "spec.template.resources.compute: Invalid value",
        ),
        (
            service("no-command", "  template:\n    command: []\n    resources: {compute: \"1\", memory: 1Gi}\n"),
            "spec.template.command",
        ),
        (
            service("bounds", &format!("  minReplicas: 5\n  maxReplicas: 2\n{TEMPLATE}")),
            "minReplicas must not exceed maxReplicas",
        ),
        (
            service("bad.name", TEMPLATE),
            "name must be a DNS-1123 label",
        ),
        (
            service("interconnect", "  template:\n    command: [serve]\n    resources:\n      compute: \"1\"\n      memory: 1Gi\n      accelerator: {memory: 80Gi, interconnect: Infiniband}\n"),
            "Unsupported value: \"Infiniband\"",
        ),
        (
            service("two-probes", &format!("  readinessProbe:\n    httpGet: {{path: /health}}\n    tcpSocket: {{port: 80}}\n{TEMPLATE}")),
            "set exactly one of httpGet and tcpSocket",
        ),
        (
            service("priority", &format!("  priority: 5000\n{TEMPLATE}")),
            "spec.priority: Invalid value",
        ),
        (
            format!(
                "apiVersion: universal.dev/v1alpha1\nkind: TrainingJob\nmetadata:\n  name: zero\n  \
                 namespace: {NS}\nspec:\n  workers: 0\n{TEMPLATE}"
            ),
            "spec.workers: Invalid value",
        ),
    ];
    for (yaml, expected) in &refused {
        let (ok, out, err) = cluster
            .kube
            .kubectl_stdin(&["apply", "-f", "-"], Some(yaml))
            .await;
        assert!(!ok, "accepted but should be refused:\n{yaml}\n{out}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
    // Scaling past maxReplicas through the scale subresource is refused the same way.
    cluster
        .apply(&service(
            "bounded",
            &format!("  replicas: 1\n  maxReplicas: 2\n{TEMPLATE}"),
        ))
        .await;
    let (ok, _, err) = cluster
        .kube
        .kubectl(&[
            "-n",
            NS,
            "scale",
            "inferenceservice/bounded",
            "--replicas=5",
        ])
        .await;
    assert!(
        !ok && err.contains("replicas must not exceed maxReplicas"),
        "{err}"
    );

    let api: Api<InferenceService> = Api::namespaced(cluster.client.clone(), NS);
    let u = &cluster.universal;

    // Valid for the schema, invalid for Universal: reported in status, nothing created.
    cluster
        .apply(&service(
            "reserved-env",
            "  template:\n    command: [serve]\n    env: [{name: RANK, value: \"0\"}]\n    resources: {compute: 500m, memory: 1Gi}\n",
        ))
        .await;
    let status = eventually("reserved-env to be reported invalid", || async {
        let obj = api.get("reserved-env").await.map_err(|e| e.to_string())?;
        let s = obj.status.clone().unwrap_or_default();
        match condition_of(&s, condition::ACCEPTED) {
            Some(("False", "InvalidSpec", _))
                if s.observed_generation == obj.metadata.generation =>
            {
                Ok(s)
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (_, _, message) = condition_of(&status, condition::ACCEPTED).expect("accepted");
    assert!(message.contains("RANK"), "{message}");
    assert_eq!(
        condition_of(&status, condition::FAILED).map(|c| c.0),
        Some("True")
    );
    assert!(u.get(NS, "reserved-env").await.expect("get").is_none());

    // Root on the nodes is not for whoever may edit resources in a namespace: refused, even
    // though the operator's token is a cluster admin's.
    cluster
        .apply(&service(
            "as-root",
            "  template:\n    command: [serve]\n    runAsUser: 0\n    resources: {compute: 500m, memory: 1Gi}\n",
        ))
        .await;
    let message = eventually("as-root to be reported invalid", || async {
        let obj = api.get("as-root").await.map_err(|e| e.to_string())?;
        let s = obj.status.clone().unwrap_or_default();
        match condition_of(&s, condition::ACCEPTED) {
            Some(("False", "InvalidSpec", m)) => Ok(m.to_string()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        message.contains("spec.template.runAsUser")
            && message.contains("--host-identity-namespaces"),
        "{message}"
    );
    assert!(u.get(NS, "as-root").await.expect("get").is_none());

    // A valid service edited into an invalid one: reported, and Universal keeps running the
    // last good spec. Fixing it again is accepted.
    cluster.apply(&service("drift", TEMPLATE)).await;
    eventually("drift to be mirrored", || async {
        match u.get(NS, "drift").await? {
            Some(w) if w.status.as_ref().is_some_and(|s| s.replicas_ready == 1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let before = u.get(NS, "drift").await.expect("get").expect("drift");
    cluster
        .apply(&service(
            "drift",
            "  template:\n    command: [serve]\n    env: [{name: WORLD_SIZE, value: \"8\"}]\n    resources: {compute: 500m, memory: 1Gi}\n",
        ))
        .await;
    eventually(
        "drift's bad edit to be reported at generation 2",
        || async {
            let obj = api.get("drift").await.map_err(|e| e.to_string())?;
            let s = obj.status.clone().unwrap_or_default();
            match condition_of(&s, condition::ACCEPTED) {
                Some(("False", "InvalidSpec", m))
                    if m.contains("WORLD_SIZE") && s.observed_generation == Some(2) =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?} at {:?}", s.observed_generation)),
            }
        },
    )
    .await;
    let after = u
        .get(NS, "drift")
        .await
        .expect("get")
        .expect("drift still runs");
    assert_eq!(
        before.meta.as_ref().map(|m| (&m.uid, m.generation)),
        after.meta.as_ref().map(|m| (&m.uid, m.generation)),
        "Universal keeps the last good spec"
    );
    cluster.apply(&service("drift", TEMPLATE)).await;
    eventually("drift to be accepted again", || async {
        let obj = api.get("drift").await.map_err(|e| e.to_string())?;
        let s = obj.status.clone().unwrap_or_default();
        match condition_of(&s, condition::ACCEPTED) {
            Some(("True", ..)) if s.observed_generation == Some(3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A name already taken in Universal by something the operator does not manage: reported,
    // and the foreign workload is never touched, not even when the resource is deleted.
    let foreign = pb::Workload {
        meta: Some(pb::ObjectMeta {
            name: "taken".into(),
            namespace: NS.into(),
            ..Default::default()
        }),
        spec: Some(pb::workload::Spec::Inference(pb::InferenceServiceSpec {
            template: Some(pb::ReplicaTemplate {
                command: vec!["/opt/other".into()],
                resources: Some(pb::Resources {
                    compute: "1".into(),
                    memory: "1Gi".into(),
                    accelerator: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })),
        status: None,
    };
    let created = u
        .workloads()
        .await
        .create_workload(pb::CreateWorkloadRequest {
            workload: Some(foreign),
            dry_run: false,
        })
        .await
        .expect("create foreign workload")
        .into_inner();
    cluster.apply(&service("taken", TEMPLATE)).await;
    eventually("the name conflict to be reported", || async {
        let obj = api.get("taken").await.map_err(|e| e.to_string())?;
        let s = obj.status.clone().unwrap_or_default();
        match condition_of(&s, condition::ACCEPTED) {
            Some(("False", "NameConflict", _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    cluster
        .kube
        .kubectl_ok(
            &[
                "-n",
                NS,
                "delete",
                "inferenceservice/taken",
                "--timeout=120s",
            ],
            None,
        )
        .await;
    let still = u
        .get(NS, "taken")
        .await
        .expect("get")
        .expect("foreign workload kept");
    let meta = still.meta.expect("meta");
    assert_eq!(Some(meta.uid), created.meta.map(|m| m.uid));
    assert!(!meta.labels.contains_key(labels::MANAGED_BY));
}
