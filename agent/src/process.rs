//! Processes by pid: start times from `/proc/PID/stat` (to tell a process from a later one
//! that reuses its pid), signals to processes and groups, and waiting for a process that is
//! not our child (pidfd, or polling `/proc` on kernels without it).

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How often `/proc` is polled where pidfd is unavailable.
const POLL: Duration = Duration::from_millis(200);

/// Fields of `/proc/PID/stat` after the command name: state is the first.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; it ends at the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn parent_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn is_zombie(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// Whether `pid` is still the process that started at `start` and has not exited.
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start) && !is_zombie(pid)
}

pub fn signal_pid(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory arguments.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Signals every process of group `pgid`.
pub fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory arguments.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// Live processes whose environment holds `variable` (`NAME=value`): the last way to find a
/// replica nothing else recorded. Needs root for other users' processes.
pub fn with_env(variable: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|pid| !is_zombie(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == variable.as_bytes()))
        })
        .collect()
}

/// Processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat_fields(p).and_then(|f| f.get(2)?.parse::<i32>().ok()) == Some(pgid))
        .filter(|&p| !is_zombie(p))
        .collect()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills and reaps every child of this process until none is left (the shim, a child
/// subreaper, inherits orphaned descendants one generation at a time).
pub fn kill_and_reap_children() {
    let me = std::process::id() as i32;
    for _ in 0..1000 {
        let children: Vec<i32> = all_pids()
            .into_iter()
            .filter(|&p| parent_of(p) == Some(me))
            .collect();
        if children.is_empty() {
            return;
        }
        for &c in &children {
            signal_pid(c, libc::SIGKILL);
        }
        for &c in &children {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid out pointer.
            unsafe { libc::waitpid(c, &mut status, 0) };
        }
    }
}

/// Waits until the process `pid` that started at `start` has exited. Works for processes
/// that are not our children; reaps it if it is one.
pub async fn wait_exit(pid: i32, start: u64) {
    if let Some(fd) = pidfd(pid) {
        // Opened after the pid could have been reused: check it is still the same process.
        if alive(pid, start) {
            // SAFETY: the AsyncFd owns `fd`, which stays open and unchanged until it is dropped.
            if let Ok(async_fd) = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            {
                let _ = async_fd.readable().await;
            }
        }
    } else {
        while alive(pid, start) {
            tokio::time::sleep(POLL).await;
        }
    }
    reap(pid);
}

/// Reaps `pid` if it is a zombie child of ours (harmless otherwise).
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: WNOHANG never blocks; `status` is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_time_identifies_a_process_and_wait_sees_it_exit() {
        let me = std::process::id() as i32;
        let start = start_time(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        signal_pid(pid, libc::SIGTERM);
        tokio::time::timeout(Duration::from_secs(10), wait_exit(pid, start))
            .await
            .unwrap();
        let _ = child.wait();
        assert!(!alive(pid, start));
    }
}
