//! Test support: a real etcd (one member, or a cluster of several) started on free loopback
//! ports with private data directories, stopped when dropped. Tests need only the `etcd`
//! binary (Debian's `etcd-server`), or `UNIVERSAL_ETCD_BIN` pointing at one.

mod cluster;
mod faults;
pub mod hostile;

pub use cluster::EtcdCluster;
pub use faults::{Faults, FaultyStore};

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::store::{EtcdOptions, EtcdStore, KvStore};
use crate::tls::client::ClientTls;
use crate::tls::pki::Ca;
use crate::tls::server::TlsFiles;
use crate::{Error, Result};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct EtcdServer {
    child: Option<Child>,
    dir: TempDir,
    name: String,
    client_port: u16,
    peer_port: u16,
    /// `--initial-cluster` of a member of a cluster; `None`: a cluster of one.
    initial_cluster: Option<String>,
    /// Set by [`EtcdServer::start_tls`]: etcd serves TLS and requires client certificates.
    pki: Option<Box<TestPki>>,
}

/// A throwaway CA in a temporary directory, issuing certificate files for tests.
pub struct TestPki {
    pub dir: TempDir,
    pub ca: Ca,
}

impl TestPki {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("uni-pki-")
            .tempdir()
            .map_err(|e| Error::Unavailable(format!("temp dir: {e}")))?;
        let ca = Ca::generate("test-ca")?;
        ca.write(dir.path(), "ca")?;
        Ok(Self { dir, ca })
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A server certificate for localhost as `NAME.crt`/`NAME.key`, with the CA as client CA.
    pub fn server(&self, name: &str) -> Result<TlsFiles> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let (cert, key) = self.paths(name);
        self.ca
            .issue_server(name, &names, Duration::from_secs(3600))?
            .write(&cert, &key)?;
        Ok(TlsFiles {
            cert,
            key,
            client_ca: Some(self.ca_path()),
        })
    }

    /// A client certificate for `user` in `group`: `(cert, key)` paths.
    pub fn client(&self, user: &str, group: Option<&str>) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.paths(&user.replace(':', "_"));
        self.ca
            .issue_client(user, group, Duration::from_secs(3600))?
            .write(&cert, &key)?;
        Ok((cert, key))
    }

    /// Client TLS trusting the CA, as `user` when given.
    pub fn client_tls(&self, user: Option<(&str, Option<&str>)>) -> Result<ClientTls> {
        let identity = user.map(|(u, g)| self.client(u, g)).transpose()?;
        ClientTls::from_files(
            Some(&self.ca_path()),
            identity.as_ref().map(|i| i.0.as_path()),
            identity.as_ref().map(|i| i.1.as_path()),
        )
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        (d.join(format!("{name}.crt")), d.join(format!("{name}.key")))
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(l.local_addr()
        .map_err(|e| Error::Unavailable(e.to_string()))?
        .port())
}

fn etcd_bin() -> String {
    std::env::var("UNIVERSAL_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

impl EtcdServer {
    /// Starts etcd and waits until it serves requests.
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// Starts etcd serving TLS only to clients with a certificate from its [`TestPki`].
    pub async fn start_tls() -> Result<Self> {
        Self::start_with(Some(Box::new(TestPki::new()?))).await
    }

    /// A member named `name` that is not started yet.
    fn new(name: &str, pki: Option<Box<TestPki>>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("uni-etcd-")
            .tempdir()
            .map_err(|e| Error::Unavailable(format!("temp dir: {e}")))?;
        Ok(Self {
            child: None,
            dir,
            name: name.to_string(),
            client_port: 0,
            peer_port: 0,
            initial_cluster: None,
            pki,
        })
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    async fn start_with(pki: Option<Box<TestPki>>) -> Result<Self> {
        let mut server = Self::new("test", pki)?;
        // Another process may take a probed port before etcd binds it: try fresh ports.
        let mut last = None;
        for _ in 0..3 {
            server.client_port = free_port()?;
            server.peer_port = free_port()?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable("etcd did not start".into())))
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The CA of a TLS etcd.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_deref()
    }

    /// How to connect: with TLS, as a client certificate for `root`.
    pub fn options(&self) -> Result<EtcdOptions> {
        Ok(EtcdOptions {
            tls: self
                .pki
                .as_ref()
                .map(|p| p.client_tls(Some(("root", None))))
                .transpose()?,
            user: None,
        })
    }

    pub async fn store(&self) -> Result<EtcdStore> {
        EtcdStore::connect_with(&[self.endpoint()], &self.options()?).await
    }

    /// Kills etcd (as a crash would); its data stays for [`EtcdServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch().await
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    async fn launch(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_ready().await
    }

    /// Starts the process without waiting: a cluster's members wait for each other.
    fn spawn(&mut self) -> Result<()> {
        let client = self.endpoint();
        let peer = self.peer_url();
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Error::Unavailable(format!("etcd log: {e}")))?;
        let mut cmd = Command::new(etcd_bin());
        if let Some(pki) = &self.pki {
            let files = pki.server("etcd")?;
            cmd.arg("--cert-file")
                .arg(&files.cert)
                .arg("--key-file")
                .arg(&files.key)
                .arg("--trusted-ca-file")
                .arg(pki.ca_path())
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", "universal-test"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Unavailable(format!("cannot run {}: {e}", etcd_bin())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls until etcd answers a read, or fails with its log if it exits or times out.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(self.failure(&format!("etcd exited with {status}")));
                }
            }
            if let Ok(store) = self.store().await {
                if store.revision().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(self.failure("etcd not ready in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn failure(&self, what: &str) -> Error {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        Error::Unavailable(format!("{what}; log tail:\n{tail}"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
