//! A launch the previous agent recorded (`launching` in `state.json`) but did not see through,
//! because it crashed between asking the shim to start the run and saving its answer. First
//! the first shim process (`starter`), if still there, is given a moment to exit: it does once
//! the run started or could not. Then the run directory tells what happened: `launched.json`
//! if the process started (or could not), else `shim.json` if a detached shim is still on its
//! way to starting it, which is given a moment too and then stopped. What started is adopted;
//! what is left without a record is found by its environment and killed; nothing is started
//! twice.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Replica;
use crate::process;
use crate::shim::{read_json, LaunchResult, ShimProcess, LAUNCHED_FILE, SHIM_FILE};

/// How long a shim found alive without an answer gets to give one.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

impl Replica {
    /// Turns an unfinished launch into a recorded one (`launched` set if the process started).
    pub(super) async fn recover_launch(&mut self) {
        if !self.state.launching {
            return;
        }
        let run_dir = self.dir.run_dir(self.state.run);
        if let Some(first) = self.state.starter {
            settle(first, || false).await;
        }
        let answer = || {
            read_json::<LaunchResult>(&run_dir.join(LAUNCHED_FILE))
                .ok()
                .flatten()
        };
        let mut result = answer();
        if result.is_none() {
            if let Ok(Some(shim)) = read_json::<ShimProcess>(&run_dir.join(SHIM_FILE)) {
                if settle(shim, || answer().is_some()).await {
                    warn!(id = %self.alloc.id, pid = shim.pid, "shim gave no answer; stopped it");
                }
                result = answer();
            }
        }
        self.state.launching = false;
        self.state.starter = None;
        self.state.launched = match result {
            Some(LaunchResult::Started(l)) => {
                info!(id = %self.alloc.id, pid = l.pid, run = self.state.run, "found the run the previous agent started");
                Some(l)
            }
            _ => {
                // Nothing recorded as started; anything that did start goes, found by its
                // cgroup or, without one, by its environment.
                self.sweep();
                let marker = format!("UNIVERSAL_ALLOCATION_ID={}", self.alloc.id);
                for pid in process::with_env(&marker) {
                    warn!(id = %self.alloc.id, pid, "killing a process of an unrecorded start");
                    process::signal_pid(pid, libc::SIGKILL);
                }
                None
            }
        };
        self.save();
    }
}

/// Waits (bounded) until a shim process has exited or `done` holds; kills it if neither came.
/// Returns whether it had to be killed.
async fn settle(shim: ShimProcess, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    while process::alive(shim.pid, shim.start) && !done() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if done() || !process::alive(shim.pid, shim.start) {
        return false;
    }
    process::signal_pid(shim.pid, libc::SIGKILL);
    process::wait_exit(shim.pid, shim.start).await;
    true
}
