//! A launch the previous agent recorded (`launching` in `state.json`) but did not see through,
//! because it crashed between asking the shim to start the run and saving its answer. The run
//! directory tells what happened: `launched.json` if the process started (or could not), else
//! `shim.json` if a shim is still on its way to starting it, which is given a moment to finish
//! and then stopped. What started is adopted; nothing is started twice.

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
        let answer = || {
            read_json::<LaunchResult>(&run_dir.join(LAUNCHED_FILE))
                .ok()
                .flatten()
        };
        let mut result = answer();
        if result.is_none() {
            if let Ok(Some(shim)) = read_json::<ShimProcess>(&run_dir.join(SHIM_FILE)) {
                let deadline = Instant::now() + SETTLE;
                while result.is_none()
                    && process::alive(shim.pid, shim.start)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(POLL).await;
                    result = answer();
                }
                if result.is_none() && process::alive(shim.pid, shim.start) {
                    warn!(id = %self.alloc.id, pid = shim.pid, "shim gave no answer; stopping it");
                    process::signal_pid(shim.pid, libc::SIGKILL);
                    process::wait_exit(shim.pid, shim.start).await;
                    result = answer();
                }
            }
        }
        self.state.launching = false;
        self.state.launched = match result {
            Some(LaunchResult::Started(l)) => {
                info!(id = %self.alloc.id, pid = l.pid, run = self.state.run, "found the run the previous agent started");
                Some(l)
            }
            _ => {
                // Nothing started; anything that did get into the cgroup goes.
                self.sweep();
                None
            }
        };
        self.save();
    }
}
