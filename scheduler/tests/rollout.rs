//! Rolling updates end to end: a real agent runs a Python service whose answer is its
//! `VERSION`; changing it rolls the replicas while clients keep calling through the gateway.

mod harness;

use std::collections::BTreeSet;
use std::sync::Arc;

use http::StatusCode;
use uni_core::model::{Allocation, EnvVar, Event, Workload, WorkloadSpec};
use uni_core::store::keys::{EventKey, TypedKey, WorkloadKey};
use uni_core::store::{codec, KvStore};
use uni_proto::v1 as pb;

use harness::{
    create, get_workload, http_client, http_get, http_service, real_cluster, wait_allocations,
    wait_for, wait_ready, Load, Scheduler, PY_SERVE,
};

/// Answers with `$VERSION`; `/healthz` fails when it is `broken`.
const SERVER: &str = r#"
import os, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
version = os.environ.get("VERSION", "")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        code = 500 if self.path == "/healthz" and version == "broken" else 200
        if self.path != "/healthz":
            time.sleep(0.05)
        b = version.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
"#;

fn service(name: &str, replicas: u32, compute: &str, version: &str) -> Workload {
    let mut w = http_service(
        name,
        &["python3", "-c", &format!("{SERVER}{PY_SERVE}")],
        (1, replicas, replicas),
        "",
    );
    set_version(&mut w, version);
    if let WorkloadSpec::Inference(s) = &mut w.spec {
        s.template.resources.compute_milli = compute.parse::<u64>().expect("millicores");
    }
    w
}

fn set_version(w: &mut Workload, version: &str) {
    if let WorkloadSpec::Inference(s) = &mut w.spec {
        s.template.env = vec![EnvVar::new("VERSION", version)];
    }
}

/// Changes the running service's `VERSION` through the API.
async fn update(s: &Scheduler, store: &Arc<dyn KvStore>, name: &str, version: &str) {
    let key = WorkloadKey::new("default", name).expect("key").format();
    let kv = store.get(&key).await.expect("get").expect("workload");
    let mut w: Workload = codec::decode(&key, &kv.value).expect("decode");
    set_version(&mut w, version);
    s.client()
        .await
        .update_workload(pb::UpdateWorkloadRequest {
            workload: Some(pb::Workload::from(&w)),
            ..Default::default()
        })
        .await
        .expect("update");
}

/// The service's status as the API shows it.
async fn status(s: &Scheduler, name: &str) -> pb::WorkloadStatus {
    get_workload(s, name).await.status.unwrap_or_default()
}

fn hashes(all: &[Allocation], name: &str) -> BTreeSet<String> {
    all.iter()
        .filter(|a| a.workload == name && a.draining.is_none())
        .map(|a| a.template_hash.clone())
        .collect()
}

/// Every allocation of `name` runs one template, `n` of them, and they are ready.
async fn rolled_out(s: &Scheduler, store: &Arc<dyn KvStore>, name: &str, n: usize) {
    wait_allocations(store, &format!("{name} on one template"), |all| {
        hashes(all, name).len() == 1 && all.iter().filter(|a| a.workload == name).count() == n
    })
    .await;
    wait_ready(store, name, n).await;
    harness::eventually(&format!("{name} rolled out"), || async {
        let st = status(s, name).await;
        st.updated_ready_replicas as usize == n && st.rollout.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_under_load_answers_every_request() {
    let c = real_cluster("roll-node").await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("roll", 3, "100", "v1")).await;
    wait_ready(store, "roll", 3).await;
    let client = http_client();
    let url = format!("{}/default/roll/work", s.gateway);
    // The gateway has seen them.
    harness::eventually("the gateway serves v1", || async {
        http_get(&client, &url).await == (StatusCode::OK, "v1".into())
    })
    .await;
    let load = Load::start(&client, &url, 4);
    update(s, store, "roll", "v2").await;
    // Old and new side by side: a surge replica runs v2 while the v1 ones still serve.
    wait_allocations(store, "two revisions running", |all| {
        hashes(all, "roll").len() == 2
    })
    .await;
    rolled_out(s, store, "roll", 3).await;
    let answers = load.stop().await;
    let failed: Vec<_> = answers
        .iter()
        .filter(|(code, _)| *code != StatusCode::OK)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let versions: BTreeSet<&str> = answers.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        versions,
        BTreeSet::from(["v1", "v2"]),
        "both served during the rollout"
    );
    assert_eq!(http_get(&client, &url).await, (StatusCode::OK, "v2".into()));
    let st = status(s, "roll").await;
    assert_eq!(st.revision, 2);
    assert!(
        st.replicas.iter().all(|r| r.revision == 2),
        "{:?}",
        st.replicas
    );
    let revisions: Vec<u32> = st.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_room_for_a_surge_replica_the_rollout_replaces_in_place() {
    let c = real_cluster("full-node").await;
    let (store, s) = (&c.store, &c.s);
    // Two replicas of 800m fill this 2-core node: a third does not fit.
    create(s, &service("full", 2, "800", "v1")).await;
    wait_ready(store, "full", 2).await;
    update(s, store, "full", "v2").await;
    rolled_out(s, store, "full", 2).await;
    let prefix = EventKey::namespace_prefix("default");
    wait_for(store, &prefix, "a RollingInPlace event", |kvs| {
        kvs.iter()
            .filter_map(|kv| codec::decode::<Event>(&kv.key, &kv.value).ok())
            .any(|e| e.involved.name == "full" && e.reason == "RollingInPlace")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_never_gets_ready_leaves_the_old_one_serving_until_undone() {
    let c = real_cluster("stall-node").await;
    let (store, s) = (&c.store, &c.s);
    create(s, &service("stall", 2, "100", "v1")).await;
    wait_ready(store, "stall", 2).await;
    let client = http_client();
    let url = format!("{}/default/stall/work", s.gateway);
    harness::eventually("the gateway serves v1", || async {
        http_get(&client, &url).await == (StatusCode::OK, "v1".into())
    })
    .await;
    update(s, store, "stall", "broken").await;
    // The new replica runs but never passes readiness: the rollout waits on it.
    harness::eventually("the rollout waiting on the new revision", || async {
        let st = status(s, "stall").await;
        st.updated_replicas == 1 && st.rollout.contains("waiting for new replicas")
    })
    .await;
    for _ in 0..10 {
        assert_eq!(http_get(&client, &url).await, (StatusCode::OK, "v1".into()));
    }
    let st = status(s, "stall").await;
    let old = st.replicas.iter().filter(|r| r.revision == 1).count();
    assert_eq!(old, 2, "both old replicas still run: {:?}", st.replicas);

    // Undo: back to v1's template, the broken replica removed.
    s.client()
        .await
        .rollback_workload(pb::RollbackWorkloadRequest {
            namespace: "default".into(),
            name: "stall".into(),
            to_revision: 0,
        })
        .await
        .expect("undo");
    rolled_out(s, store, "stall", 2).await;
    assert_eq!(http_get(&client, &url).await, (StatusCode::OK, "v1".into()));
    let err = s
        .client()
        .await
        .rollback_workload(pb::RollbackWorkloadRequest {
            namespace: "default".into(),
            name: "stall".into(),
            to_revision: 9,
        })
        .await
        .expect_err("no revision 9");
    assert!(err.message().contains("to_revision"), "{err:?}");
}
