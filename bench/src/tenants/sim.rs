//! The replay: the control plane's own planner and committer over an embedded store, its
//! cache fed by the store's watch as in `uni-scheduler`, and a clock that jumps from one
//! thing to happen to the next. The harness plays the users (submitting and deleting) and the
//! agents (reporting replicas running, finished, or stopped after a notice); every decision
//! (order, admission, placement, preemption, resizing) is the planner's.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;
use uni_core::catalog::Catalog;
use uni_core::model::{Allocation, ReplicaPhase, ReplicaStatus, UnixMillis, Workload, WorkloadRef};
use uni_core::store::keys::{NodeKey, QueueKey, StatusKey, TypedKey, WorkloadKey};
use uni_core::store::{
    codec, Compare, CompareOp, CompareTarget, EmbeddedStore, KvStore, Txn, TxnOp,
};
use uni_scheduler::cache::Cache;
use uni_scheduler::metrics::Metrics;
use uni_scheduler::schedule::{Committer, Planner};

use super::measure::{Record, Sample};
use super::policy::Policy;
use super::scenario::{self, Arrival, Shape, Team};

/// A training job checkpoints this often (in run time); a stop loses what ran since.
pub const CHECKPOINT_MS: i64 = 20 * 60_000;
/// A noticed replica checkpoints (if it can) and exits this long after its notice.
const EXIT_MS: i64 = 20_000;
const SAMPLE_MS: i64 = 60_000;
/// Passes one step may take before the harness moves on.
const MAX_PASSES: usize = 64;
const LEADER_KEY: &str = "/bench/tenants/leader";

enum Due {
    Arrive(usize),
    /// A run of job `.0` (its `.1`th) reaches the end of its work.
    Finish(usize, u32),
    /// A noticed replica exits.
    Exit(Box<Allocation>),
    /// A service is deleted.
    End(usize),
}

/// A training job's current run.
struct Run {
    seq: u32,
    allocs: Vec<Allocation>,
    start: i64,
}

/// What the harness knows of one submission.
pub struct Job {
    pub arrival: Arrival,
    pub r: WorkloadRef,
    /// Training: work left, in ms at full size.
    left_ms: f64,
    run: Option<Run>,
    runs: u32,
    pub placed_at: Option<i64>,
    pub done_at: Option<i64>,
    /// It arrived within its queue's guarantee while the fleet had no room for it: its
    /// placement needed the guarantee taken back.
    pub reclaim: bool,
}

pub struct Sim {
    store: Arc<dyn KvStore>,
    cache: Arc<Cache>,
    planner: Planner,
    committer: Committer,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
    t0: Instant,
    wall0: i64,
    now: i64,
    wake: Option<i64>,
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    due: HashMap<u64, Due>,
    next_id: u64,
    pub jobs: Vec<Job>,
    teams: Vec<Team>,
    /// Allocations reported running, and noticed ones already exiting.
    reported: HashSet<String>,
    exiting: HashSet<String>,
    pub record: Record,
}

impl Sim {
    pub async fn new(
        policy: Policy,
        teams: Vec<Team>,
        arrivals: Vec<Arrival>,
    ) -> anyhow::Result<Self> {
        // tmpfs where there is one: the store fsyncs every write.
        let base = ["/dev/shm", "/tmp"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_dir())
            .unwrap_or("/tmp");
        let dir = tempfile::tempdir_in(base)?;
        let store: Arc<dyn KvStore> = Arc::new(EmbeddedStore::open(dir.path().join("db")).await?);
        let cancel = CancellationToken::new();
        let cache = Cache::new(Arc::new(Catalog::builtin()?));
        tokio::spawn(cache.clone().run(store.clone(), cancel.clone()));
        let term = store.put(LEADER_KEY, b"bench".to_vec(), 0).await?;
        let fence = Compare {
            key: LEADER_KEY.into(),
            op: CompareOp::Equal,
            target: CompareTarget::CreateRevision(term),
        };
        let metrics = Metrics::new().context("metrics")?;
        let planner = Planner::new(
            policy.plan_config(),
            uni_placement::Policy::default(),
            metrics.clone(),
        );
        // One commit at a time, so the replay is the same every run.
        let committer = Committer::new(store.clone(), fence, metrics, 1);
        for i in 0..scenario::NODES {
            let node = node(&format!("gpu-{i:02}"));
            let key = NodeKey::new(node.meta.name.clone())?.format();
            store.put(&key, codec::encode(&node)?, 0).await?;
        }
        for q in policy.queues(&teams) {
            let key = QueueKey::new(q.meta.name.clone())?.format();
            store.put(&key, codec::encode(&q)?, 0).await?;
        }
        let mut sim = Self {
            store,
            cache,
            planner,
            committer,
            cancel,
            _dir: dir,
            t0: Instant::now(),
            wall0: UnixMillis::now().0,
            now: 0,
            wake: None,
            heap: BinaryHeap::new(),
            due: HashMap::new(),
            next_id: 0,
            jobs: Vec::new(),
            teams,
            reported: HashSet::new(),
            exiting: HashSet::new(),
            record: Record::default(),
        };
        for (i, a) in arrivals.into_iter().enumerate() {
            sim.at(a.at_ms, Due::Arrive(i));
            let name = format!("{}-{i:05}", sim.teams[a.team].name);
            let left_ms = a.duration_ms as f64;
            sim.jobs.push(Job {
                r: WorkloadRef::new("default", &name),
                arrival: a,
                left_ms,
                run: None,
                runs: 0,
                placed_at: None,
                done_at: None,
                reclaim: false,
            });
        }
        sim.sync().await?;
        Ok(sim)
    }

    fn at(&mut self, t: i64, d: Due) {
        self.next_id += 1;
        self.heap.push(Reverse((t, self.next_id)));
        self.due.insert(self.next_id, d);
    }

    fn wall(&self) -> UnixMillis {
        UnixMillis(self.wall0 + self.now)
    }

    fn instant(&self) -> Instant {
        self.t0 + Duration::from_millis(self.now as u64)
    }

    /// Runs until `until_ms` or until every job is done; samples every minute until
    /// `measure_until_ms`.
    pub async fn run(&mut self, until_ms: i64, measure_until_ms: i64) -> anyhow::Result<()> {
        let mut next_sample = 0;
        loop {
            let event = self.heap.peek().map(|Reverse((t, _))| *t);
            let sample = (next_sample <= measure_until_ms).then_some(next_sample);
            let Some(next) = [event, self.wake, sample].into_iter().flatten().min() else {
                break;
            };
            if next > until_ms
                || self.jobs.iter().all(|j| j.done_at.is_some()) && next > measure_until_ms
            {
                break;
            }
            self.now = next.max(self.now);
            let mut acted = self.wake.is_some_and(|w| w <= self.now);
            while let Some(Reverse((t, id))) = self.heap.peek().copied() {
                if t > self.now {
                    break;
                }
                self.heap.pop();
                if let Some(d) = self.due.remove(&id) {
                    acted |= self.happen(d).await?;
                }
            }
            if acted {
                self.step().await?;
            }
            if next_sample <= self.now && next_sample <= measure_until_ms {
                self.sample();
                next_sample += SAMPLE_MS;
            }
        }
        Ok(())
    }

    /// Passes until the planner has nothing to do, answering as the agents would.
    async fn step(&mut self) -> anyhow::Result<()> {
        for _ in 0..8 {
            self.sync().await?;
            self.settle().await?;
            if !self.observe().await? {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn sync(&self) -> anyhow::Result<()> {
        let revision = self.store.revision().await?;
        if !self.cache.wait_for(revision, Duration::from_secs(30)).await {
            bail!("the cache did not catch up with revision {revision}");
        }
        Ok(())
    }

    async fn settle(&mut self) -> anyhow::Result<()> {
        for _ in 0..MAX_PASSES {
            self.planner.refresh_event_lease(&*self.store).await;
            let (plan, wake) = {
                let mut st = self.cache.lock();
                self.planner.plan_at(&mut st, self.instant(), self.wall())
            };
            // A timer already due is handled by the next step.
            self.wake = wake.map(|w| {
                let ms = w.saturating_duration_since(self.t0).as_millis() as i64;
                ms.max(self.now + 1)
            });
            if plan.is_empty() {
                return Ok(());
            }
            self.committer.submit(plan).await?;
            self.committer.drain().await?;
            self.sync().await?;
        }
        self.record.unsettled += 1;
        Ok(())
    }

    async fn happen(&mut self, d: Due) -> anyhow::Result<bool> {
        match d {
            Due::Arrive(i) => self.arrive(i).await?,
            Due::Finish(i, seq) => {
                let Some(run) = self.jobs[i].run.take_if(|r| r.seq == seq) else {
                    return Ok(false);
                };
                self.report(&run.allocs, ReplicaPhase::Succeeded).await?;
                self.jobs[i].done_at = Some(self.now);
            }
            Due::Exit(a) => self.report(&[*a], ReplicaPhase::Preempted).await?,
            Due::End(i) => {
                let r = &self.jobs[i].r;
                let key = WorkloadKey::new(r.namespace.clone(), r.name.clone())?.format();
                self.store.delete(&key).await?;
                self.jobs[i].done_at = Some(self.now);
            }
        }
        Ok(true)
    }

    async fn arrive(&mut self, i: usize) -> anyhow::Result<()> {
        let job = &self.jobs[i];
        let team = &self.teams[job.arrival.team];
        let mut w = workload(&job.r.name, team, &job.arrival.shape);
        w.meta.uid = format!("uid-{i}");
        w.meta.generation = 1;
        w.meta.created = self.wall();
        w.status.replicas_desired = w.spec.desired_replicas();
        uni_core::validate::validate_workload(&w).with_context(|| format!("workload {}", job.r))?;
        let size = u64::from(job.arrival.shape.size()) * 1000;
        let reclaim = {
            let st = self.cache.lock();
            let used = st.queue_usage(team.name).device_milli;
            let held: u64 = st.allocations().map(|a| a.amounts().device_milli).sum();
            let free = (u64::from(scenario::FLEET_GPUS) * 1000).saturating_sub(held);
            used + size <= u64::from(team.guaranteed_gpus) * 1000 && free < size
        };
        let key = WorkloadKey::new(job.r.namespace.clone(), job.r.name.clone())?.format();
        self.store.put(&key, codec::encode(&w)?, 0).await?;
        self.jobs[i].reclaim = reclaim;
        if let Shape::Serve { .. } = self.jobs[i].arrival.shape {
            let end = self.now + self.jobs[i].arrival.duration_ms;
            self.at(end, Due::End(i));
        }
        Ok(())
    }

    /// Writes replica statuses as the agents of `allocs` would.
    async fn report(&self, allocs: &[Allocation], phase: ReplicaPhase) -> anyhow::Result<()> {
        for chunk in allocs.chunks(100) {
            let mut ops = Vec::new();
            for a in chunk {
                let key =
                    StatusKey::new(a.namespace.as_str(), a.workload.as_str(), a.replica)?.format();
                let status = ReplicaStatus {
                    allocation_id: a.id.clone(),
                    node: a.node.clone(),
                    phase,
                    updated: self.wall(),
                    ..ReplicaStatus::default()
                };
                ops.push(TxnOp::put(key, codec::encode(&status)?));
            }
            if !ops.is_empty() {
                self.store.txn(Txn::new().and_then(ops)).await?;
            }
        }
        Ok(())
    }

    /// Looks at what the planner decided: reports new replicas running, starts and stops
    /// the harness's runs, schedules noticed replicas' exits. Returns whether it wrote.
    async fn observe(&mut self) -> anyhow::Result<bool> {
        let mut by_workload: BTreeMap<String, Vec<Allocation>> = BTreeMap::new();
        {
            let st = self.cache.lock();
            for a in st.allocations() {
                by_workload
                    .entry(a.workload.clone())
                    .or_default()
                    .push(a.clone());
            }
        }
        let mut running = Vec::new();
        let mut exits = Vec::new();
        for allocs in by_workload.values() {
            for a in allocs {
                if a.notice.is_some() {
                    if self.exiting.insert(a.id.clone()) {
                        exits.push(a.clone());
                    }
                } else if self.reported.insert(a.id.clone()) {
                    running.push(a.clone());
                }
            }
        }
        for a in exits {
            let deadline = a
                .notice
                .as_ref()
                .map_or(self.now, |n| n.deadline.0 - self.wall0);
            self.at(
                (self.now + EXIT_MS).min(deadline.max(self.now)),
                Due::Exit(Box::new(a)),
            );
        }
        let now = self.now;
        let mut finishes = Vec::new();
        for (i, job) in self.jobs.iter_mut().enumerate() {
            if job.done_at.is_some() || job.arrival.at_ms > now {
                continue;
            }
            let allocs = by_workload.get(&job.r.name).map_or(&[][..], Vec::as_slice);
            let live: Vec<&Allocation> = allocs.iter().filter(|a| a.notice.is_none()).collect();
            match job.arrival.shape {
                Shape::Serve { replicas, .. } => {
                    if job.placed_at.is_none() && live.len() as u32 >= replicas {
                        job.placed_at = Some(now);
                    }
                }
                Shape::Train { workers, gpus, .. } => {
                    if let Some(run) = &job.run {
                        let stopped = run.allocs.iter().any(|r| {
                            allocs
                                .iter()
                                .find(|a| a.id == r.id)
                                .is_none_or(|a| a.notice.is_some())
                        });
                        if stopped {
                            let run = job.run.take().expect("run");
                            let n = run.allocs.len() as f64;
                            let elapsed = now - run.start;
                            let kept = elapsed / CHECKPOINT_MS * CHECKPOINT_MS;
                            job.left_ms -= kept as f64 * n / f64::from(workers);
                            let reason = allocs
                                .iter()
                                .find_map(|a| a.notice.as_ref())
                                .map_or_else(|| "Lost".to_string(), |n| n.reason.clone());
                            self.record.stopped(
                                job.arrival.team,
                                &reason,
                                (elapsed - kept) as f64 * n * f64::from(gpus) / 3_600_000.0,
                            );
                        }
                    }
                    if job.run.is_none() && !live.is_empty() {
                        let n = live.len() as f64;
                        job.runs += 1;
                        job.placed_at.get_or_insert(now);
                        let finish =
                            now + (job.left_ms.max(0.0) * f64::from(workers) / n).ceil() as i64;
                        job.run = Some(Run {
                            seq: job.runs,
                            allocs: live.into_iter().cloned().collect(),
                            start: now,
                        });
                        finishes.push((finish, i, job.runs));
                    }
                }
            }
        }
        for (t, i, seq) in finishes {
            self.at(t, Due::Finish(i, seq));
        }
        self.report(&running, ReplicaPhase::Running).await?;
        Ok(!running.is_empty())
    }

    fn sample(&mut self) {
        let n = self.teams.len();
        let mut held = vec![0.0; n];
        let index: HashMap<&str, usize> = self
            .teams
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name, i))
            .collect();
        {
            let st = self.cache.lock();
            for a in st.allocations() {
                if let Some(&i) = index.get(a.queue.as_str()) {
                    held[i] += a.amounts().device_milli as f64 / 1000.0;
                }
            }
        }
        let mut demand = vec![0.0; n];
        for j in &self.jobs {
            if j.arrival.at_ms <= self.now && j.done_at.is_none() {
                demand[j.arrival.team] += f64::from(j.arrival.shape.size());
            }
        }
        self.record.samples.push(Sample { held, demand });
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An 8-GPU node as its agent registers it.
fn node(name: &str) -> uni_core::model::Node {
    const GIB: u64 = 1 << 30;
    let gpus = scenario::GPUS_PER_NODE;
    let mut n = uni_core::model::Node {
        meta: uni_core::model::ObjectMeta::cluster(name),
        ..Default::default()
    };
    let capacity = uni_core::model::ResourceAmounts {
        compute_milli: 96_000,
        memory_bytes: 1024 * GIB,
        device_milli: u64::from(gpus) * 1000,
        device_memory_bytes: u64::from(gpus) * 80 * GIB,
    };
    n.status.capacity = capacity;
    n.status.allocatable = capacity;
    n.status.ready = true;
    n.status.address = "10.0.0.1".into();
    n.status.inventory.memory_bytes = 1024 * GIB;
    n.status.inventory.accelerators = (0..gpus)
        .map(|i| uni_core::model::AcceleratorDevice {
            index: i,
            uuid: format!("GPU-{name}-{i}"),
            model: "H100-80GB".into(),
            memory_bytes: 80 * GIB,
            healthy: true,
            ..Default::default()
        })
        .collect();
    n
}

/// The workload a team submits for `shape`.
fn workload(name: &str, team: &Team, shape: &Shape) -> Workload {
    let resources = |gpus: u32| {
        format!(
            r#"{{compute: "{c}", memory: {m}Gi, accelerator: {{memory: {d}Gi, min_devices: {gpus}, max_devices: {gpus}}}}}"#,
            c = 8 * gpus,
            m = 64 * gpus,
            d = 70 * gpus
        )
    };
    let yaml = match shape {
        Shape::Train {
            workers,
            min_workers,
            gpus,
            ..
        } => format!(
            r#"
meta: {{name: {name}, namespace: default}}
spec:
  training:
    template: {{command: ["train"], resources: {res}}}
    workers: {{min: {min_workers}, max: {workers}}}
    preemptible: {pre}
    priority: {prio}
    queue: {queue}
"#,
            res = resources(*gpus),
            pre = team.preemptible,
            prio = team.priority,
            queue = team.name,
        ),
        Shape::Serve { replicas, gpus, .. } => format!(
            r#"
meta: {{name: {name}, namespace: default}}
spec:
  inference:
    template: {{command: ["serve"], resources: {res}}}
    replicas: {{min: {replicas}, max: {replicas}, desired: {replicas}}}
    priority: {prio}
    queue: {queue}
"#,
            res = resources(*gpus),
            prio = team.priority,
            queue = team.name,
        ),
    };
    serde_yaml::from_str(&yaml).expect("the harness's workloads parse")
}
