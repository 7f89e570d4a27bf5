//! Test support: a real etcd started on free loopback ports with a private data directory,
//! stopped when dropped. Tests need only the `etcd` binary (Debian's `etcd-server`), or
//! `UNIVERSAL_ETCD_BIN` pointing at one.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::store::{EtcdStore, KvStore};
use crate::{Error, Result};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct EtcdServer {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
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
        let dir = tempfile::Builder::new()
            .prefix("uni-etcd-")
            .tempdir()
            .map_err(|e| Error::Unavailable(format!("temp dir: {e}")))?;
        let mut server = Self {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
        };
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

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub async fn store(&self) -> Result<EtcdStore> {
        EtcdStore::connect(&[self.endpoint()]).await
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
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Error::Unavailable(format!("etcd log: {e}")))?;
        let child = Command::new(etcd_bin())
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Unavailable(format!("cannot run {}: {e}", etcd_bin())))?;
        self.child = Some(child);
        self.wait_ready().await
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
