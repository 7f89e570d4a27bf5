//! The shim: a small process between the agent and each replica process, so replicas outlive
//! agent restarts. It starts the process (own process group, cgroup joined before `exec`,
//! clean environment, unprivileged and confined to its devices: see `confine`), copies its stdout and stderr into rotated log files, waits for it,
//! kills whatever it left behind and records how it ended in `exit.json`. Being a child
//! subreaper, it inherits orphaned descendants and kills them too: no orphans, ever.
//!
//! The agent starts it as `uni-agent shim RUN_DIR/spec.json`; it double-forks and detaches,
//! reports the process ids in `launched.json`, and the first process exits. Where no shim
//! executable is available (an embedding binary), the same supervision runs on a thread of the
//! agent instead, and replicas then stop with the agent.
//!
//! Files of a run directory: `spec.json` (what to run), `shim.json` (the detached shim's pid,
//! written before it starts anything), `launched.json` (pids, or why it could not start),
//! `exit.json` (how it ended), `output.log*` (output).

mod confine;
mod process_main;
mod supervise;

use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uni_core::model::UnixMillis;

use crate::error::{Error, Result};

pub use confine::{Confinement, DEVICE_MASK_FILE};
pub use process_main::run as run_process;
pub use supervise::supervise;

pub const SPEC_FILE: &str = "spec.json";
pub const SHIM_FILE: &str = "shim.json";
pub const LAUNCHED_FILE: &str = "launched.json";
pub const EXIT_FILE: &str = "exit.json";

/// What to run, written by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub program: String,
    pub args: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    /// Where logs, `launched.json` and `exit.json` go.
    pub run_dir: PathBuf,
    /// `cgroup.procs` files the process joins before `exec`.
    pub cgroup_procs: Vec<PathBuf>,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// Who the process runs as and which device nodes it cannot open.
    pub confinement: Confinement,
}

/// Process ids of a started run; start times (from `/proc/PID/stat`) guard against pid reuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    pub shim_pid: i32,
    pub shim_start: u64,
    pub pid: i32,
    pub start: u64,
    pub pgid: i32,
}

/// The detached shim itself, so an agent that crashed while it started can find it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimProcess {
    pub pid: i32,
    pub start: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchResult {
    Started(Launched),
    Failed(String),
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Set when the process could not be started at all.
    pub error: Option<String>,
    pub finished: UnixMillis,
}

/// Writes `value` as JSON to `path` atomically (temporary file, then rename), readable by
/// the agent's user only (specs carry the replica's environment).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::State {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(Error::at("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::at("renaming", &tmp))
}

/// Reads JSON written by [`write_json`]; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::at("reading", path)(e)),
    }
}
