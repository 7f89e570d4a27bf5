//! Every manifest in deploy/kubernetes/ passes `kubectl apply --dry-run=server` against a real
//! API server (CRDs and the namespace installed first, since dry runs of namespaced objects
//! and custom resources need them), the kustomization builds and applies as a whole, and
//! the operator's RBAC grants what it needs and nothing more.

mod support;

use std::path::{Path, PathBuf};

use support::KubeApiServer;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read deploy dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml")
            && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_passes_server_side_dry_run() {
    let kube = KubeApiServer::start().await;
    let deploy = deploy_dir();
    kube.install_crds().await;
    let namespace = deploy.join("namespace.yaml");
    kube.kubectl_ok(&["apply", "-f", &namespace.to_string_lossy()], None)
        .await;

    let mut files = Vec::new();
    yaml_files(&deploy, &mut files);
    assert!(files.len() >= 10, "manifests found: {files:?}");
    for f in &files {
        let path = f.to_string_lossy();
        let out = kube
            .kubectl_ok(&["apply", "--dry-run=server", "-f", &path], None)
            .await;
        assert!(out.contains("(server dry run)"), "{path}: {out}");
    }
    let out = kube
        .kubectl_ok(
            &["apply", "--dry-run=server", "-k", &deploy.to_string_lossy()],
            None,
        )
        .await;
    for object in [
        "deployment.apps/uni-scheduler",
        "deployment.apps/uni-operator",
        "daemonset.apps/uni-agent",
        "statefulset.apps/etcd",
        "service/uni-scheduler",
        "clusterrole.rbac.authorization.k8s.io/universal:uni-operator",
    ] {
        assert!(out.contains(object), "kustomization lacks {object}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_rbac_is_sufficient_and_least_privilege() {
    let kube = KubeApiServer::start().await;
    let deploy = deploy_dir();
    kube.install_crds().await;
    for f in ["namespace.yaml", "rbac/operator.yaml"] {
        kube.kubectl_ok(&["apply", "-f", &deploy.join(f).to_string_lossy()], None)
            .await;
    }
    let sa = "--as=system:serviceaccount:universal-system:uni-operator";
    let can = |args: Vec<&'static str>| {
        let kube = &kube;
        async move {
            let mut full = vec!["auth", "can-i", sa];
            full.extend(args);
            let (ok, out, err) = kube.kubectl(&full).await;
            (ok, out.trim().to_string(), err)
        }
    };
    let allowed = [
        vec![
            "watch",
            "inferenceservices.universal.dev",
            "--all-namespaces",
        ],
        vec!["patch", "trainingjobs.universal.dev", "-n", "team-a"],
        vec![
            "patch",
            "inferenceservices.universal.dev/status",
            "-n",
            "team-a",
        ],
        vec!["list", "queues.universal.dev"],
        vec!["patch", "queues.universal.dev/status"],
        vec!["create", "events.events.k8s.io", "-n", "team-a"],
        vec![
            "create",
            "leases.coordination.k8s.io",
            "-n",
            "universal-system",
        ],
        vec![
            "update",
            "leases.coordination.k8s.io/uni-operator",
            "-n",
            "universal-system",
        ],
    ];
    for a in allowed {
        let (ok, out, err) = can(a.clone()).await;
        assert!(ok && out == "yes", "operator needs {a:?}: {out} {err}");
    }
    let denied = [
        vec!["delete", "inferenceservices.universal.dev", "-n", "team-a"],
        vec!["create", "trainingjobs.universal.dev", "-n", "team-a"],
        vec!["get", "secrets", "-n", "universal-system"],
        vec![
            "update",
            "leases.coordination.k8s.io/other",
            "-n",
            "universal-system",
        ],
        vec!["create", "leases.coordination.k8s.io", "-n", "kube-system"],
        vec!["create", "pods", "-n", "team-a"],
    ];
    for d in denied {
        let (_, out, err) = can(d.clone()).await;
        assert_eq!(out, "no", "operator must not {d:?} ({err})");
    }
}
