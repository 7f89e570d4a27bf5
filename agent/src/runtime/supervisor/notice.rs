//! A stop notice (preemption or resize): the notice file appears, then SIGTERM, then SIGKILL
//! at the notice's deadline; the replica is reported Preempted and waits for its allocation
//! to be removed. It is never started again on this allocation.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use uni_core::model::{ReplicaPhase, StopNotice, UnixMillis};

use super::{Replica, Run};

/// Resolves with the notice once there is one; never if the sender goes away without one.
pub(super) async fn next(rx: &mut watch::Receiver<Option<StopNotice>>) -> StopNotice {
    loop {
        if let Some(n) = rx.borrow_and_update().clone() {
            return n;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

impl Replica {
    /// Gives `run` notice and stops it by the deadline.
    pub(super) async fn stop_for(mut self, run: &mut Run, n: StopNotice) {
        self.write_notice(&n);
        let left = u64::try_from(n.deadline.0 - UnixMillis::now().0).unwrap_or(0);
        info!(id = %self.alloc.id, reason = %n.reason, grace_ms = left, "stop notice given: SIGTERM");
        self.terminate_within(run, Duration::from_millis(left))
            .await;
        self.state.launched = None;
        self.stopped_by(&n);
        self.wait_for_end().await
    }

    /// Reports the replica stopped by `n`.
    pub(super) fn stopped_by(&mut self, n: &StopNotice) {
        self.write_notice(n);
        self.save();
        self.report(
            ReplicaPhase::Preempted,
            None,
            None,
            &format!("stopped ({}): {}", n.reason, n.message),
        );
    }

    /// Writes the notice file, readable by the replica, whole or not at all.
    fn write_notice(&self, n: &StopNotice) {
        let path = self.dir.notice_file();
        if path.exists() {
            return;
        }
        let body = serde_json::json!({
            "reason": n.reason,
            "message": n.message,
            "by": n.by,
            "deadline": n.deadline.0,
            "resize_to": n.resize_to,
        });
        let tmp = path.with_extension("json.tmp");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(body.to_string().as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            warn!(id = %self.alloc.id, error = %e, "cannot write the stop notice file");
        }
    }
}
