//! Starting a run: through the shim process (replicas outlive the agent) or, where no shim
//! executable exists, on an agent thread (replicas stop with the agent).

use std::path::PathBuf;
use std::process::Stdio;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::process;
use crate::shim::{
    read_json, supervise, write_json, ExitInfo, LaunchResult, LaunchSpec, Launched, ShimProcess,
    EXIT_FILE, LAUNCHED_FILE, SPEC_FILE,
};

/// How replica processes are supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimMode {
    /// `EXE shim SPEC`; `EXE` is a uni-agent binary.
    Exec(PathBuf),
    /// On a thread of the agent.
    InProcess,
}

/// Waits for a run to end.
pub enum ExitWait {
    /// A shim process, watched by pid (it is not our child).
    Shim {
        pid: i32,
        start: u64,
        run_dir: PathBuf,
    },
    InProcess(JoinHandle<ExitInfo>),
    /// Already over (found so after an agent restart).
    Done(ExitInfo),
}

impl ExitWait {
    /// Resolves when the run is over; cancel-safe, may be called again.
    pub async fn wait(&mut self) -> ExitInfo {
        let info = match self {
            ExitWait::Done(info) => return info.clone(),
            ExitWait::Shim {
                pid,
                start,
                run_dir,
            } => {
                process::wait_exit(*pid, *start).await;
                read_json::<ExitInfo>(&run_dir.join(EXIT_FILE))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| ExitInfo {
                        error: Some(
                            "the shim ended without recording how the process ended".into(),
                        ),
                        ..ExitInfo::default()
                    })
            }
            ExitWait::InProcess(handle) => handle.await.unwrap_or_else(|e| ExitInfo {
                error: Some(format!("supervisor thread failed: {e}")),
                ..ExitInfo::default()
            }),
        };
        *self = ExitWait::Done(info.clone());
        info
    }
}

impl ShimMode {
    /// Writes the spec to the run directory and starts the run; `spawned` is told the first
    /// shim process as soon as it exists (it exits once the run started or could not).
    pub async fn launch(
        &self,
        spec: LaunchSpec,
        spawned: impl FnOnce(ShimProcess),
    ) -> Result<(Launched, ExitWait), String> {
        let spec_path = spec.run_dir.join(SPEC_FILE);
        write_json(&spec_path, &spec).map_err(|e| e.to_string())?;
        match self {
            ShimMode::Exec(exe) => {
                let child = tokio::process::Command::new(exe)
                    .arg("shim")
                    .arg(&spec_path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("running the shim {}: {e}", exe.display()))?;
                if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                    spawned(ShimProcess {
                        pid,
                        start: process::start_time(pid).unwrap_or(0),
                    });
                }
                let out = child
                    .wait_with_output()
                    .await
                    .map_err(|e| format!("running the shim {}: {e}", exe.display()))?;
                let launched: Option<LaunchResult> =
                    read_json(&spec.run_dir.join(LAUNCHED_FILE)).map_err(|e| e.to_string())?;
                match launched {
                    Some(LaunchResult::Started(l)) if out.status.success() => Ok((
                        l,
                        ExitWait::Shim {
                            pid: l.shim_pid,
                            start: l.shim_start,
                            run_dir: spec.run_dir.clone(),
                        },
                    )),
                    Some(LaunchResult::Failed(m)) => Err(m),
                    _ => Err(format!(
                        "the shim failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                }
            }
            ShimMode::InProcess => {
                let (tx, rx) = oneshot::channel();
                let handle = tokio::task::spawn_blocking(move || {
                    supervise(&spec, false, move |r| {
                        let _ = tx.send(r.clone());
                    })
                });
                match rx.await {
                    Ok(LaunchResult::Started(l)) => Ok((l, ExitWait::InProcess(handle))),
                    Ok(LaunchResult::Failed(m)) => Err(m),
                    Err(_) => Err("the supervisor thread ended before starting the process".into()),
                }
            }
        }
    }
}
