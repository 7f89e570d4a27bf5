//! A real `uni-agent` as a process, for tests that need replicas to run.
//! Needs the `uni-agent` binary beside `uni-scheduler` (`cargo test --workspace` builds both).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The real agent, as a process.
pub struct AgentProcess {
    child: Child,
    args: Vec<String>,
    pub log: PathBuf,
    node: String,
}

impl AgentProcess {
    fn binary() -> PathBuf {
        let bin = Path::new(env!("CARGO_BIN_EXE_uni-scheduler")).with_file_name("uni-agent");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p uni-agent` (cargo test --workspace does)",
            bin.display()
        );
        bin
    }

    /// An agent for node `name` with `labels` (`k=v`), its data and log under `data`.
    pub fn start(endpoints: &str, data: &Path, name: &str, labels: &str) -> Self {
        let args: Vec<String> = [
            "--etcd-endpoints",
            endpoints,
            "--node-name",
            name,
            "--labels",
            labels,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--address",
            "127.0.0.1",
            "--data-dir",
            &data.display().to_string(),
            "--lease-ttl-seconds",
            "2",
            "--no-nvml",
            "--grace-period-seconds",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = data.join("agent.log");
        let child = Self::spawn(&args, &log);
        Self {
            child,
            args,
            log,
            node: name.to_string(),
        }
    }

    fn spawn(args: &[String], log: &Path) -> Child {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("agent log");
        Command::new(Self::binary())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start uni-agent")
    }

    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }

    /// SIGKILL, as a crash would; its replicas' shims keep running.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.crash();
        self.child = Self::spawn(&self.args, &self.log);
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.signal("CONT");
        self.crash();
        // The replicas it left behind.
        for (pid, _) in replica_processes(&self.node) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Live replica processes of node `node`, with their `ns/workload/replica`.
pub fn replica_processes(node: &str) -> Vec<(i32, String)> {
    let marker = format!("UNIVERSAL_NODE={node}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: HashMap<&[u8], &[u8]> = env
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let i = kv.iter().position(|&b| b == b'=')?;
                Some((&kv[..i], &kv[i + 1..]))
            })
            .collect();
        if !env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()) {
            continue;
        }
        let get = |k: &str| {
            String::from_utf8_lossy(vars.get(k.as_bytes()).copied().unwrap_or_default())
                .into_owned()
        };
        out.push((
            pid,
            format!(
                "{}/{}/{}",
                get("UNIVERSAL_NAMESPACE"),
                get("UNIVERSAL_WORKLOAD"),
                get("UNIVERSAL_REPLICA")
            ),
        ));
    }
    out
}
