//! How a run ended, in the terms of a replica status: the phase, exit code or signal, and a
//! message saying why (could not start, OOM-killed, exit code, signal).

use uni_core::model::ReplicaPhase;

use super::Replica;
use crate::shim::ExitInfo;

/// A finished run as it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ended {
    pub phase: ReplicaPhase,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub message: String,
}

impl Replica {
    pub(super) fn classify(&self, exit: &ExitInfo) -> Ended {
        let oom_killed = self
            .state
            .cgroup
            .as_ref()
            .is_some_and(|c| c.oom_kills() > self.state.oom_baseline);
        classify(exit, oom_killed, self.alloc.memory_bytes)
    }
}

/// `oom_killed`: the cgroup counted an OOM kill during the run; `memory_limit` in bytes.
fn classify(exit: &ExitInfo, oom_killed: bool, memory_limit: u64) -> Ended {
    let ended = |phase, code, signal, message: String| Ended {
        phase,
        code,
        signal,
        message,
    };
    if let Some(error) = &exit.error {
        return ended(
            ReplicaPhase::Failed,
            None,
            None,
            format!("cannot start: {error}"),
        );
    }
    if oom_killed {
        return ended(
            ReplicaPhase::OomKilled,
            exit.code,
            exit.signal,
            format!("killed for exceeding its memory limit of {memory_limit} bytes"),
        );
    }
    match (exit.code, exit.signal) {
        (Some(0), _) => ended(
            ReplicaPhase::Succeeded,
            Some(0),
            None,
            "exited with code 0".into(),
        ),
        (Some(c), _) => ended(
            ReplicaPhase::Failed,
            Some(c),
            None,
            format!("exited with code {c}"),
        ),
        (None, Some(s)) => ended(
            ReplicaPhase::Failed,
            None,
            Some(s),
            format!("killed by signal {s} ({})", signal_name(s)),
        ),
        (None, None) => ended(
            ReplicaPhase::Failed,
            None,
            None,
            "ended for an unknown reason".into(),
        ),
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_oom_codes_and_signals_are_told_apart() {
        let exit = |code, signal| ExitInfo {
            code,
            signal,
            ..ExitInfo::default()
        };
        let failed = ExitInfo {
            error: Some("no such file".into()),
            ..ExitInfo::default()
        };
        assert_eq!(
            classify(&failed, true, 1).message,
            "cannot start: no such file"
        );
        let oom = classify(&exit(None, Some(libc::SIGKILL)), true, 64);
        assert_eq!(oom.phase, ReplicaPhase::OomKilled);
        assert_eq!(oom.signal, Some(libc::SIGKILL));
        assert_eq!(
            classify(&exit(Some(0), None), false, 0).phase,
            ReplicaPhase::Succeeded
        );
        assert_eq!(
            classify(&exit(Some(3), None), false, 0),
            Ended {
                phase: ReplicaPhase::Failed,
                code: Some(3),
                signal: None,
                message: "exited with code 3".into(),
            }
        );
        assert_eq!(
            classify(&exit(None, Some(libc::SIGSEGV)), false, 0).message,
            format!("killed by signal {} (SIGSEGV)", libc::SIGSEGV)
        );
        assert_eq!(
            classify(&exit(None, None), false, 0).message,
            "ended for an unknown reason"
        );
    }
}
