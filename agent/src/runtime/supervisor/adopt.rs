//! Re-adopting the run a previous agent started: still running, ended while no agent watched,
//! or lost (its shim gone), in which case what is left of it is stopped.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Replica, Run};
use crate::process;
use crate::runtime::launcher::ExitWait;
use crate::shim::{read_json, ExitInfo, EXIT_FILE};

impl Replica {
    /// A run a previous agent started: still running (re-adopted), ended while no agent
    /// watched (its recorded exit), or lost (`Err`, after stopping what was left of it).
    pub(super) fn adopt(&mut self) -> Option<Result<Run, String>> {
        let l = self.state.launched?;
        let run_dir = self.dir.run_dir(self.state.run);
        if !self.state.in_process && process::alive(l.shim_pid, l.shim_start) {
            info!(id = %self.alloc.id, pid = l.pid, "re-adopted running process");
            self.host
                .replicas
                .update(&self.alloc.id, |e| e.running = true);
            return Some(Ok(Run {
                exit: ExitWait::Shim {
                    pid: l.shim_pid,
                    start: l.shim_start,
                    run_dir,
                },
                launched: l,
                started: Instant::now(),
            }));
        }
        if let Ok(Some(exit)) = read_json::<ExitInfo>(&run_dir.join(EXIT_FILE)) {
            return Some(Ok(Run {
                exit: ExitWait::Done(exit),
                launched: l,
                started: Instant::now(),
            }));
        }
        if process::alive(l.pid, l.start) {
            process::signal_group(l.pgid, libc::SIGKILL);
        }
        self.sweep();
        self.state.launched = None;
        warn!(id = %self.alloc.id, pid = l.pid, "could not re-adopt the process; stopped it");
        Some(Err(format!(
            "the agent restarted and could not re-adopt process {} (its supervisor was gone); \
             stopped it",
            l.pid
        )))
    }
}
