//! The `uni-operator` binary under test, as a child process that can be killed (as a crash
//! would) and started again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

pub struct Operator {
    child: Child,
    pub identity: String,
    log: PathBuf,
}

impl Operator {
    /// Starts `uni-operator run` against `kubeconfig` and the scheduler at `api` (trusting `ca`,
    /// calling with the token in `token_file`), with short resync and lease timings. Its log
    /// goes to `log_dir/{identity}.log`.
    pub fn start(
        kubeconfig: &Path,
        api: &str,
        (ca, token_file): (PathBuf, PathBuf),
        identity: &str,
        log_dir: &Path,
    ) -> Self {
        let log = log_dir.join(format!("{identity}.log"));
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_uni-operator"))
            .args(["run", "--scheduler", api])
            .arg("--ca")
            .arg(ca)
            .arg("--token-file")
            .arg(token_file)
            .args(["--identity", identity])
            .args(["--resync-seconds", "2", "--lease-seconds", "3"])
            .args(["--lease-namespace", "default"])
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("TEST_OPERATOR_LOG").unwrap_or_else(|_| "uni_operator=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start uni-operator");
        Self {
            child,
            identity: identity.to_string(),
            log,
        }
    }

    /// SIGKILL: no cleanup, no lease release, requests in flight cut off.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        tokio::time::timeout(super::wait::DEADLINE, self.child.wait())
            .await
            .expect("uni-operator stops after SIGTERM")
            .expect("wait for uni-operator")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    /// A failing test shows what the operator was doing.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.identity,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}
