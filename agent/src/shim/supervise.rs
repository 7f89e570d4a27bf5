//! Runs one replica process to its end: the part of the shim that does not care whether it
//! runs in its own process or on an agent thread.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use uni_core::model::UnixMillis;

use super::{
    confine, write_json, ExitInfo, LaunchResult, LaunchSpec, Launched, EXIT_FILE, LAUNCHED_FILE,
};
use crate::logs::{copy_lines, LogWriter, Stream};
use crate::process;

/// How long to wait for the output of a finished process to be copied when a descendant that
/// escaped every kill still holds the pipes (only possible on an agent thread).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the process, reports it through `launched` (and `launched.json`), copies its output,
/// waits for it and writes `exit.json`. `reap_orphans`: this process is a child subreaper of
/// its own and may kill every child it has once the replica process ends.
pub fn supervise(
    spec: &LaunchSpec,
    reap_orphans: bool,
    launched: impl FnOnce(&LaunchResult),
) -> ExitInfo {
    let fail = |message: String, launched: Box<dyn FnOnce(&LaunchResult)>| {
        let result = LaunchResult::Failed(message.clone());
        let _ = write_json(&spec.run_dir.join(LAUNCHED_FILE), &result);
        launched(&result);
        let exit = ExitInfo {
            error: Some(message),
            finished: UnixMillis::now(),
            ..ExitInfo::default()
        };
        let _ = write_json(&spec.run_dir.join(EXIT_FILE), &exit);
        exit
    };
    let launched: Box<dyn FnOnce(&LaunchResult)> = Box::new(launched);
    let writer = match LogWriter::open(&spec.run_dir, spec.log_max_bytes, spec.log_max_files) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => return fail(format!("opening log files: {e}"), launched),
    };
    let mut cgroup_files = Vec::new();
    for path in &spec.cgroup_procs {
        match File::options().write(true).open(path) {
            Ok(f) => cgroup_files.push(f),
            Err(e) => return fail(format!("joining cgroup {}: {e}", path.display()), launched),
        }
    }
    let fds: Vec<i32> = cgroup_files.iter().map(AsRawFd::as_raw_fd).collect();
    let (confinement, report) = match confine::prepare(&spec.confinement, &spec.run_dir) {
        Ok(c) => c,
        Err(e) => return fail(format!("preparing to confine the process: {e}"), launched),
    };
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure only makes async-signal-safe system calls (write(2) on descriptors
    // opened above, then the confinement, prepared above) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            confinement.apply()
        });
    }
    let spawned = cmd.spawn();
    // The command holds the confinement's end of the report pipe.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return fail(report.failure(&spec.program, &e), launched),
    };
    drop(report);
    drop(cgroup_files);
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let me = std::process::id() as i32;
    let info = Launched {
        shim_pid: me,
        shim_start: process::start_time(me).unwrap_or(0),
        pid,
        start: process::start_time(pid).unwrap_or(0),
        pgid: pid,
    };
    let result = LaunchResult::Started(info);
    let _ = write_json(&spec.run_dir.join(LAUNCHED_FILE), &result);
    launched(&result);

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut copiers = Vec::new();
    for (pipe, stream) in [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            Stream::Stdout,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            Stream::Stderr,
        ),
    ] {
        if let Some(pipe) = pipe {
            let w = writer.clone();
            let done = done_tx.clone();
            copiers.push(std::thread::spawn(move || {
                copy_lines(pipe, stream, &w);
                drop(done);
            }));
        }
    }
    drop(done_tx);
    let status = child.wait();
    // Whatever the process left behind in its group dies with it.
    process::signal_group(pid, libc::SIGKILL);
    if reap_orphans {
        process::kill_and_reap_children();
    }
    // Both copiers end when every holder of the pipes is gone.
    let _ = done_rx.recv_timeout(DRAIN_TIMEOUT);
    if reap_orphans {
        for c in copiers {
            let _ = c.join();
        }
    }
    let mut exit = ExitInfo {
        finished: UnixMillis::now(),
        ..ExitInfo::default()
    };
    match status {
        Ok(s) => {
            exit.code = s.code();
            exit.signal = s.signal();
        }
        Err(e) => exit.error = Some(format!("waiting for the process: {e}")),
    }
    let _ = write_json(&spec.run_dir.join(EXIT_FILE), &exit);
    exit
}
