//! `uni-agent shim SPEC`: detaches (double fork, new session, child subreaper) and supervises.
//! Must run before any thread is started, because it forks.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use super::{read_json, supervise, write_json, LaunchResult, LaunchSpec, ShimProcess, SHIM_FILE};
use crate::process;

/// Runs the shim; the returned code is the first process's exit status: 0 once the replica
/// process started, 1 if it could not.
pub fn run(spec_path: &Path) -> i32 {
    let spec: LaunchSpec = match read_json(spec_path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("shim: {} does not exist", spec_path.display());
            return 1;
        }
        Err(e) => {
            eprintln!("shim: {e}");
            return 1;
        }
    };
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("shim: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (called before any runtime starts).
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("shim: fork: {}", std::io::Error::last_os_error());
            1
        }
        0 => {
            drop(read_end);
            detach(&spec.run_dir);
            let me = std::process::id() as i32;
            let shim = ShimProcess {
                pid: me,
                start: process::start_time(me).unwrap_or(0),
            };
            if let Err(e) = write_json(&spec.run_dir.join(SHIM_FILE), &shim) {
                // Without it a crashed agent could not find this shim: start nothing.
                let mut r = std::fs::File::from(write_end);
                let _ = writeln!(r, "shim: {e}");
                return 1;
            }
            let mut report = Some(std::fs::File::from(write_end));
            let exit = supervise(&spec, true, move |result| {
                let line = match result {
                    LaunchResult::Started(_) => "ok\n".to_string(),
                    LaunchResult::Failed(m) => format!("{}\n", m.replace('\n', " ")),
                };
                // Closing the pipe lets the first process exit now, not when the run ends.
                if let Some(mut r) = report.take() {
                    let _ = r.write_all(line.as_bytes());
                }
            });
            drop(exit);
            0
        }
        _ => {
            drop(write_end);
            let mut answer = String::new();
            let _ = BufReader::new(std::fs::File::from(read_end)).read_line(&mut answer);
            if answer.trim() == "ok" {
                0
            } else {
                let answer = answer.trim();
                eprintln!(
                    "{}",
                    if answer.is_empty() {
                        "shim exited before starting the process"
                    } else {
                        answer
                    }
                );
                1
            }
        }
    }
}

/// New session (so no terminal or process-group signal of the agent reaches the shim), child
/// subreaper, standard streams to `shim.log` (or `/dev/null`), so no descriptor the agent
/// waits on stays open.
fn detach(run_dir: &Path) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscalls without memory arguments.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let null = std::fs::File::open("/dev/null");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("shim.log"))
        .or_else(|_| std::fs::OpenOptions::new().write(true).open("/dev/null"));
    // SAFETY: dup2 onto the standard descriptors of this process.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), 0);
        }
        match &log {
            Ok(log) => {
                libc::dup2(log.as_raw_fd(), 1);
                libc::dup2(log.as_raw_fd(), 2);
            }
            Err(_) => {
                libc::close(1);
                libc::close(2);
            }
        }
    }
}
