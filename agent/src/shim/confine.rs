//! Confining a replica process, in the child between `fork` and `exec`, in this order: its
//! `oom_score_adj` back to 0 (the agent may protect itself with a negative one); a private
//! mount namespace in which every accelerator device node not bound to the replica is covered
//! by an empty mode-0000 file (so it cannot be opened, not even by uid 0: it is not the device
//! any more); the capability bounding set dropped (it needs CAP_SETPCAP, so before the user
//! changes); `setgroups([gid])`, `setgid`, `setuid`; `no_new_privs`; no ambient, effective,
//! permitted or inheritable capability left.
//!
//! Everything the child needs is prepared before the fork ([`prepare`]); the child only makes
//! system calls, allocates nothing, and on failure writes which step failed to a pipe, so the
//! shim reports "confining the process: setuid(65534): Operation not permitted" as the run's
//! start failure, as it does for a failed `exec`.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::RunAs;

/// The empty file, in the run directory, that covers hidden device nodes.
pub const DEVICE_MASK_FILE: &str = "device-mask";
const OOM_SCORE_ADJ: &CStr = c"/proc/self/oom_score_adj";
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";
/// Tried when `cap_last_cap` cannot be read; the first capability the kernel does not know
/// ends the drop.
const CAP_LAST_CAP_FALLBACK: u32 = 63;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Who the process runs as and which device nodes it may not open; written by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Switch to `run_as`, hide the unbound device nodes and drop the bounding set. False only
    /// where the agent is not root and cannot: the process keeps the agent's user (`run_as`
    /// says which) and loses only what an unprivileged process can give up.
    pub switch_user: bool,
    pub run_as: RunAs,
    /// Every accelerator device node of this machine.
    pub device_paths: Vec<PathBuf>,
    /// Those of the accelerators bound to this replica, left as they are.
    pub bound_device_paths: Vec<PathBuf>,
}

impl Default for Confinement {
    /// Fully confined, as `nobody`.
    fn default() -> Self {
        Self {
            switch_user: true,
            run_as: RunAs::NOBODY,
            device_paths: Vec::new(),
            bound_device_paths: Vec::new(),
        }
    }
}

impl Confinement {
    /// The device nodes to hide: this machine's, less the bound ones, that exist and are not
    /// directories (nothing to hide otherwise; a directory cannot be covered by a file).
    pub fn hidden_devices(&self) -> Vec<PathBuf> {
        self.device_paths
            .iter()
            .filter(|p| !self.bound_device_paths.contains(p))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
            .cloned()
            .collect()
    }
}

/// A step of the confinement, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    OomScoreAdj = 1,
    MountNamespace,
    PrivateMounts,
    HideDevice,
    BoundingSet,
    SetGroups,
    SetGid,
    SetUid,
    NoNewPrivs,
    AmbientSet,
    Capabilities,
}

impl Step {
    const ALL: [Step; 11] = [
        Step::OomScoreAdj,
        Step::MountNamespace,
        Step::PrivateMounts,
        Step::HideDevice,
        Step::BoundingSet,
        Step::SetGroups,
        Step::SetGid,
        Step::SetUid,
        Step::NoNewPrivs,
        Step::AmbientSet,
        Step::Capabilities,
    ];

    fn from_code(code: u8) -> Option<Step> {
        Self::ALL.into_iter().find(|s| *s as u8 == code)
    }
}

/// What the child needs, prepared before the fork.
pub struct Prepared {
    switch_user: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    mask_source: CString,
    hidden: Vec<CString>,
    cap_last: u32,
    cap_last_known: bool,
    report: OwnedFd,
}

/// The shim's end of the child's report.
pub struct Report {
    read: OwnedFd,
    run_as: RunAs,
    hidden: Vec<PathBuf>,
}

/// Prepares the confinement of one process started from `run_dir`: the mask file (when there
/// is something to hide), the paths as C strings, the report pipe.
pub fn prepare(c: &Confinement, run_dir: &Path) -> Result<(Prepared, Report), String> {
    let hidden = if c.switch_user {
        c.hidden_devices()
    } else {
        Vec::new()
    };
    let mask = run_dir.join(DEVICE_MASK_FILE);
    if !hidden.is_empty() {
        create_mask(&mask).map_err(|e| format!("creating {}: {e}", mask.display()))?;
    }
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| format!("{}: contains a NUL byte", p.display()))
    };
    let (cap_last, cap_last_known) = match std::fs::read_to_string(CAP_LAST_CAP)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(n) => (n, true),
        None => (CAP_LAST_CAP_FALLBACK, false),
    };
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(format!(
            "creating a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let prepared = Prepared {
        switch_user: c.switch_user,
        uid: c.run_as.uid,
        gid: c.run_as.gid,
        mask_source: c_path(&mask)?,
        hidden: hidden.iter().map(|p| c_path(p)).collect::<Result<_, _>>()?,
        cap_last,
        cap_last_known,
        report: write,
    };
    let report = Report {
        read,
        run_as: c.run_as,
        hidden,
    };
    Ok((prepared, report))
}

/// An empty regular file nobody may open (mode 0000).
fn create_mask(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o000)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000))
}

impl Report {
    /// Why the process could not be started, given the error `spawn` returned: the step the
    /// child reported, or else the `exec` failure of `program`.
    pub fn failure(&self, program: &str, err: &io::Error) -> String {
        let mut buf = [0u8; 5];
        // SAFETY: reads at most `buf.len()` bytes into `buf`; the descriptor is non-blocking.
        let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match (n, Step::from_code(buf[0])) {
            (5, Some(step)) => {
                let arg = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                format!("confining the process: {}: {err}", self.describe(step, arg))
            }
            _ => format!("{program}: {err}"),
        }
    }

    fn describe(&self, step: Step, arg: u32) -> String {
        let RunAs { uid, gid } = self.run_as;
        match step {
            Step::OomScoreAdj => "resetting /proc/self/oom_score_adj to 0".into(),
            Step::MountNamespace => "entering a private mount namespace".into(),
            Step::PrivateMounts => "making the mounts private".into(),
            Step::HideDevice => {
                let path = usize::try_from(arg).ok().and_then(|i| self.hidden.get(i));
                match path {
                    Some(p) => format!("hiding device {}", p.display()),
                    None => "hiding a device".into(),
                }
            }
            Step::BoundingSet => format!("dropping capability {arg} from the bounding set"),
            Step::SetGroups => format!("setgroups([{gid}])"),
            Step::SetGid => format!("setgid({gid})"),
            Step::SetUid => format!("setuid({uid})"),
            Step::NoNewPrivs => "setting no_new_privs".into(),
            Step::AmbientSet => "clearing the ambient capabilities".into(),
            Step::Capabilities => "dropping every capability (capset)".into(),
        }
    }
}

type StepResult = Result<(), (Step, u32, io::Error)>;

fn step(s: Step, r: io::Result<()>) -> StepResult {
    r.map_err(|e| (s, 0, e))
}

/// `ret` of a system call returning -1 on failure, as an `io::Result` (errno, no allocation).
fn check(ret: libc::c_long) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Prepared {
    /// Confines the calling process. Runs in the forked child: async-signal-safe system calls
    /// only, no allocation. A failure is reported to the shim before it is returned.
    pub fn apply(&self) -> io::Result<()> {
        match self.steps() {
            Ok(()) => Ok(()),
            Err((s, arg, err)) => {
                let mut msg = [0u8; 5];
                msg[0] = s as u8;
                msg[1..].copy_from_slice(&arg.to_le_bytes());
                // SAFETY: writes 5 bytes from `msg` (atomic on a pipe).
                unsafe { libc::write(self.report.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
                Err(err)
            }
        }
    }

    fn steps(&self) -> StepResult {
        step(Step::OomScoreAdj, reset_oom_score_adj())?;
        if self.switch_user {
            step(Step::MountNamespace, enter_mount_namespace())?;
            step(Step::PrivateMounts, make_mounts_private())?;
            for (i, target) in self.hidden.iter().enumerate() {
                hide_device(&self.mask_source, target)
                    .map_err(|e| (Step::HideDevice, i as u32, e))?;
            }
            drop_bounding_set(self.cap_last, self.cap_last_known)
                .map_err(|(cap, e)| (Step::BoundingSet, cap, e))?;
            step(Step::SetGroups, set_groups(self.gid))?;
            step(Step::SetGid, set_gid(self.gid))?;
            step(Step::SetUid, set_uid(self.uid))?;
        }
        step(Step::NoNewPrivs, set_no_new_privs())?;
        step(Step::AmbientSet, clear_ambient())?;
        step(Step::Capabilities, clear_capabilities())
    }
}

/// Children must not inherit the agent's (possibly negative) OOM score adjustment.
fn reset_oom_score_adj() -> io::Result<()> {
    // SAFETY: a NUL-terminated static path.
    let fd = unsafe { libc::open(OOM_SCORE_ADJ.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: writes one byte from a static buffer to the descriptor opened above.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let result = if written == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

fn enter_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes flags only.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }.into())
}

/// Nothing mounted in the new namespace propagates back to the host.
fn make_mounts_private() -> io::Result<()> {
    // SAFETY: NUL-terminated static target; null source, type and data are allowed here.
    check(
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        }
        .into(),
    )
}

/// Covers `target` with the mask file, read-only. A node that disappeared meanwhile is fine.
fn hide_device(mask: &CStr, target: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated paths prepared before the fork.
    let bound = unsafe {
        libc::mount(
            mask.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if bound == -1 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ENOENT) {
            Ok(())
        } else {
            Err(err)
        };
    }
    // SAFETY: as above; remounts the bind mount just made.
    check(
        unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                std::ptr::null(),
            )
        }
        .into(),
    )
}

/// Drops capabilities 0..=`last` from the bounding set, so no `exec` can gain any back.
/// Where `last` is a guess, the first capability the kernel does not know (EINVAL) ends it.
fn drop_bounding_set(last: u32, known: bool) -> Result<(), (u32, io::Error)> {
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if !known && cap > 0 && err.raw_os_error() == Some(libc::EINVAL) {
                return Ok(());
            }
            return Err((cap, err));
        }
    }
    Ok(())
}

fn set_groups(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: one group id read from a valid pointer.
    check(unsafe { libc::setgroups(1, &gid) }.into())
}

fn set_gid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setgid takes an id only.
    check(unsafe { libc::setgid(gid) }.into())
}

fn set_uid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setuid takes an id only.
    check(unsafe { libc::setuid(uid) }.into())
}

fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())
}

/// Kernels before 4.3 have no ambient set (EINVAL): nothing to clear.
fn clear_ambient() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    match check(ret.into()) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empty effective, permitted and inheritable sets (both 32-bit halves).
fn clear_capabilities() -> io::Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a version-3 header and two data structs from valid pointers.
    check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existing_unbound_nodes_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let c = Confinement {
            device_paths: vec![
                a.clone(),
                b.clone(),
                dir.path().join("gone"),
                dir.path().into(),
            ],
            bound_device_paths: vec![a],
            ..Confinement::default()
        };
        assert_eq!(c.hidden_devices(), vec![b]);
    }

    #[test]
    fn a_failed_step_is_named_and_an_exec_failure_stays_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = Confinement {
            run_as: RunAs { uid: 7, gid: 8 },
            ..Confinement::default()
        };
        let (prepared, report) = prepare(&c, dir.path()).unwrap();
        let err = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(report.failure("x", &err), format!("x: {err}"));
        let msg = [Step::SetUid as u8, 0, 0, 0, 0];
        // SAFETY: writes 5 bytes from `msg`.
        unsafe { libc::write(prepared.report.as_raw_fd(), msg.as_ptr().cast(), 5) };
        assert_eq!(
            report.failure("x", &err),
            format!("confining the process: setuid(7): {err}")
        );
    }
}
