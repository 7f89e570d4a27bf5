//! Starting a new run: a fresh run directory, the cgroup and its limits, the launch spec
//! (program, arguments, working directory, environment, who it runs as and which device nodes
//! it may open), then the shim; a run that cannot start is one that ended at once with the
//! reason.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::time::Instant;
use tracing::{info, warn};
use uni_core::model::ReplicaPhase;

use super::{Replica, Run};
use crate::cgroup::Limits;
use crate::runtime::env;
use crate::runtime::launcher::{ExitWait, ShimMode};
use crate::runtime::RunAs;
use crate::shim::{Confinement, LaunchSpec, Launched};

impl Replica {
    /// Starts a new run; a failure to start is a run that ended at once with the reason.
    pub(super) async fn launch(&mut self, note: &str) -> Run {
        self.report(ReplicaPhase::Starting, None, None, note);
        self.state.run += 1;
        let run_dir = self.dir.run_dir(self.state.run);
        if let Err(e) = create_private_dir(&run_dir) {
            return Run::failed(format!("creating {}: {e}", run_dir.display()));
        }
        self.dir.prune_runs(self.state.run);
        let limits_note = self.limit();
        let (spec, confinement_note) = match self.launch_spec(run_dir) {
            Ok(spec) => spec,
            Err(message) => {
                self.save();
                return Run::failed(message);
            }
        };
        let note = [limits_note, confinement_note]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        self.state.launching = true;
        self.state.starter = None;
        self.state.launched = None;
        self.state.in_process = matches!(self.host.shim, ShimMode::InProcess);
        if let Err(e) = self.dir.save(&self.state) {
            self.state.launching = false;
            return Run::failed(format!(
                "recording the start of run {}: {e}",
                self.state.run
            ));
        }
        let host = self.host.clone();
        let started = host
            .shim
            .launch(spec, |first| {
                self.state.starter = Some(first);
                self.save();
            })
            .await;
        self.record_start(started, note)
    }

    /// Puts the replica in its cgroup (created once) and notes the OOM kills so far; returns
    /// what to say when it runs without limits.
    fn limit(&mut self) -> String {
        let mut limits_note = String::new();
        if self.state.cgroup.is_none() {
            let limits = Limits {
                compute_milli: self.alloc.compute_milli,
                memory_bytes: self.alloc.memory_bytes,
            };
            match self.host.cgroups.create(&self.alloc.id, limits) {
                Ok(cg) => self.state.cgroup = cg,
                Err(e) => {
                    warn!(id = %self.alloc.id, error = %e, "no cgroup: running without limits");
                    limits_note = format!("running without resource limits: {e}");
                }
            }
        }
        if let Err(reason) = self.host.cgroups.availability() {
            limits_note =
                format!("running without resource limits (cgroups unavailable: {reason})");
        }
        self.state.oom_baseline = self.state.cgroup.as_ref().map_or(0, |c| c.oom_kills());
        limits_note
    }

    /// What the shim runs, from the run spec, and what to say about how it is confined;
    /// `Err` says why it cannot run.
    fn launch_spec(&self, run_dir: PathBuf) -> Result<(LaunchSpec, String), String> {
        let run_spec = &self.state.run_spec;
        let Some((program, rest)) = run_spec.command.split_first() else {
            return Err("the workload's template.command is empty".into());
        };
        let scratch = run_spec.working_dir.is_empty();
        let working_dir = if scratch {
            self.dir.work_dir()
        } else {
            run_spec.working_dir.clone().into()
        };
        std::fs::create_dir_all(&working_dir)
            .map_err(|e| format!("working directory {}: {e}", working_dir.display()))?;
        let (confinement, note) = self.confinement()?;
        if scratch && confinement.switch_user {
            // The replica writes its scratch directory; a working directory the template names
            // is used as it is.
            let RunAs { uid, gid } = confinement.run_as;
            std::os::unix::fs::chown(&working_dir, Some(uid), Some(gid)).map_err(|e| {
                format!(
                    "giving the working directory {} to uid {uid} gid {gid}: {e}",
                    working_dir.display()
                )
            })?;
        }
        let mut args = rest.to_vec();
        args.extend(run_spec.args.iter().cloned());
        let mut env = env::build(
            run_spec,
            &self.alloc,
            &self.host.base_env,
            self.host.has_accelerators,
        );
        env::set(
            &mut env,
            env::NOTICE_FILE_VAR,
            self.dir.notice_file().display().to_string(),
        );
        let spec = LaunchSpec {
            program: program.clone(),
            args,
            env,
            working_dir,
            run_dir,
            cgroup_procs: self
                .state
                .cgroup
                .as_ref()
                .map(|c| c.procs_files())
                .unwrap_or_default(),
            log_max_bytes: self.host.opts.log_max_bytes,
            log_max_files: self.host.opts.log_max_files,
            confinement,
        };
        Ok((spec, note))
    }

    /// Who the process runs as and which device nodes it may open. An agent that is not root
    /// cannot switch users or hide devices: the replica keeps the agent's user (said in its
    /// status), unless its template asked for another, which it then cannot start as.
    fn confinement(&self) -> Result<(Confinement, String), String> {
        let run_spec = &self.state.run_spec;
        // SAFETY: geteuid and getegid take no arguments and cannot fail.
        let own = unsafe {
            RunAs {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        };
        if own.uid == 0 {
            let nodes = &self.host.device_nodes;
            let confinement = Confinement {
                switch_user: true,
                run_as: run_spec.run_as,
                device_paths: nodes.all(),
                bound_device_paths: nodes.bound(&self.alloc.devices),
            };
            return Ok((confinement, String::new()));
        }
        if run_spec.run_as_explicit && run_spec.run_as != own {
            return Err(format!(
                "the template asks to run as uid {} gid {}, but the agent is not root (uid {}) \
                 and cannot switch users",
                run_spec.run_as.uid, run_spec.run_as.gid, own.uid
            ));
        }
        let confinement = Confinement {
            switch_user: false,
            run_as: own,
            device_paths: Vec::new(),
            bound_device_paths: Vec::new(),
        };
        let note = format!(
            "running as the agent's user (uid {}): the agent is not root, so the replica cannot \
             be confined to its own user and devices",
            own.uid
        );
        Ok((confinement, note))
    }

    /// Records what the shim started (or why it could not) in the state and the table.
    fn record_start(&mut self, started: Result<(Launched, ExitWait), String>, note: String) -> Run {
        let run_number = self.state.run;
        let cgroup = self.state.cgroup.clone();
        self.host.replicas.update(&self.alloc.id, |e| {
            e.run = run_number;
            e.cgroup = cgroup;
        });
        self.state.launching = false;
        self.state.starter = None;
        match started {
            Ok((launched, exit)) => {
                self.state.launched = Some(launched);
                self.save();
                self.host
                    .replicas
                    .update(&self.alloc.id, |e| e.running = true);
                info!(id = %self.alloc.id, pid = launched.pid, run = run_number, "started");
                self.note = note;
                Run {
                    exit,
                    launched,
                    started: Instant::now(),
                }
            }
            Err(message) => {
                self.state.launched = None;
                self.save();
                Run::failed(message)
            }
        }
    }
}

/// Creates `run_dir` (`runs/N`) readable by the agent's user only, `runs/` too: logs and the
/// launch spec (the replica's environment) are no business of other replicas.
fn create_private_dir(run_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(run_dir)?;
    let private = std::fs::Permissions::from_mode(0o700);
    if let Some(runs) = run_dir.parent() {
        std::fs::set_permissions(runs, private.clone())?;
    }
    std::fs::set_permissions(run_dir, private)
}
