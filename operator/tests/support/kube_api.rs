//! A real kube-apiserver on a private etcd, with a bearer token and a kubeconfig, stopped
//! when dropped. No kubelet, scheduler or controller-manager: CRDs, watches, the status and
//! scale subresources, finalizers, Leases, Events and RBAC all work without them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use uni_core::testing::EtcdServer;

use super::bins::k8s_bin;
use super::wait::eventually;

const TOKEN: &str = "universal-test-admin-token";

pub struct KubeApiServer {
    child: Child,
    _etcd: EtcdServer,
    dir: TempDir,
    pub kubeconfig: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package `openssl`) is needed to make service-account keys");
    assert!(status.success(), "openssl {args:?} failed");
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver; returns once the API answers.
    pub async fn start() -> Self {
        let bin = k8s_bin("kube-apiserver");
        let etcd = EtcdServer::start().await.expect("etcd for kube-apiserver");
        let dir = tempfile::Builder::new()
            .prefix("uni-kube-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        openssl(d, &["genrsa", "-out", "sa.key", "2048"]);
        openssl(d, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
        std::fs::write(
            d.join("tokens.csv"),
            format!("{TOKEN},admin,admin,\"system:masters\"\n"),
        )
        .expect("token file");
        let port = free_port();
        let log = std::fs::File::create(d.join("kube-apiserver.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--etcd-servers={}", etcd.endpoint()))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!(
                "--service-account-key-file={}",
                d.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            // No controller-manager mints service-account tokens, and loopback addresses
            // are refused by the default endpoint reconciler.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--endpoint-reconciler-type=none")
            // As every real cluster allows (the agent DaemonSet runs privileged).
            .arg("--allow-privileged=true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start kube-apiserver");
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    \
                 server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\n\
                 users:\n- name: admin\n  user:\n    token: {TOKEN}\ncontexts:\n- name: test\n  \
                 context:\n    cluster: test\n    user: admin\ncurrent-context: test\n",
                ca = d.join("certs").join("apiserver.crt").display(),
            ),
        )
        .expect("kubeconfig");
        let mut server = Self {
            child,
            _etcd: etcd,
            dir,
            kubeconfig,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let log = self.dir.path().join("kube-apiserver.log");
        let child = &mut self.child;
        eventually("kube-apiserver to be ready", || {
            let kubeconfig = kubeconfig.clone();
            let exited = child.try_wait().ok().flatten();
            let log = log.clone();
            async move {
                if let Some(status) = exited {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(30).collect();
                    panic!(
                        "kube-apiserver exited ({status}); log tail:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                // The certificate appears once the server has generated it. /readyz also
                // waits for the post-start hooks, e.g. the bootstrap RBAC roles.
                let client = client_from(&kubeconfig).await?;
                let req = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                let body = client.request_text(req).await.map_err(|e| e.to_string())?;
                if body.trim() != "ok" {
                    return Err(body);
                }
                Api::<Namespace>::all(client)
                    .get("default")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
    }

    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await.expect("kube client")
    }

    /// Runs kubectl against this server; returns (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_stdin(args, None).await
    }

    /// Runs kubectl with `input` on stdin (for `-f -`).
    pub async fn kubectl_stdin(
        &self,
        args: &[&str],
        input: Option<&str>,
    ) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(k8s_bin("kubectl"))
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            // A discovery cache per server: never stale from another test's server.
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kubectl-cache").display()
            ))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("kubectl stdin");
        if let Some(text) = input {
            stdin
                .write_all(text.as_bytes())
                .await
                .expect("write to kubectl");
        }
        drop(stdin);
        let out = child.wait_with_output().await.expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed; returns its stdout.
    pub async fn kubectl_ok(&self, args: &[&str], input: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl_stdin(args, input).await;
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    /// Applies the checked-in CRDs and waits until every one is Established.
    pub async fn install_crds(&self) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/crds");
        let dir = dir.to_string_lossy().into_owned();
        self.kubectl_ok(&["apply", "--server-side", "-f", &dir], None)
            .await;
        let crds: Api<CustomResourceDefinition> = Api::all(self.client().await);
        for name in [
            "inferenceservices.universal.dev",
            "trainingjobs.universal.dev",
            "queues.universal.dev",
        ] {
            eventually(&format!("CRD {name} to be established"), || {
                let crds = crds.clone();
                async move {
                    let crd = crds.get(name).await.map_err(|e| e.to_string())?;
                    let established = crd
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    if established {
                        Ok(())
                    } else {
                        Err("not established".to_string())
                    }
                }
            })
            .await;
        }
        // Established CRDs reach discovery a moment later; kubectl needs them there.
        eventually("universal.dev in API discovery", || async {
            let (ok, out, err) = self
                .kubectl(&["api-resources", "--api-group=universal.dev", "-o", "name"])
                .await;
            if ok && out.lines().count() == 3 {
                Ok(())
            } else {
                Err(format!("{out}{err}"))
            }
        })
        .await;
    }
}

async fn client_from(kubeconfig: &Path) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}
