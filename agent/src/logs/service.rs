//! `LogService.StreamLogs`: a workload's output on this node, from the run directories the
//! runtime names. The scheduler proxies to it; clients may also call it directly. At most
//! `max_streams` streams at once; files are read on blocking threads only while reading (a
//! followed stream waits on a timer, not a thread), and a client that reads nothing for
//! [`STALL`] is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use uni_core::model::DEFAULT_NAMESPACE;
use uni_proto::v1::log_service_server::LogService;
use uni_proto::v1::{LogChunk, LogStream, StreamLogsRequest};

use super::follow::Follower;
use super::format::{Entry, Stream};
use super::reader::{read_run_at, ReadOptions};

/// Largest chunk sent.
const MAX_CHUNK: usize = 64 * 1024;
/// How often a followed file is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// A client that takes no chunk for this long is dropped.
pub const STALL: Duration = Duration::from_secs(30);
/// Concurrent streams served by default.
pub const DEFAULT_MAX_STREAMS: usize = 64;

/// One replica's run whose output is asked for.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub replica: u32,
    /// The run's directory; the run is over once `exit.json` exists there or it is gone.
    pub run_dir: PathBuf,
}

impl LogSource {
    fn over(&self) -> bool {
        !self.run_dir.is_dir() || self.run_dir.join("exit.json").exists()
    }
}

/// What the runtime tells the log server.
pub trait LogSources: Send + Sync + 'static {
    /// The current (or, with `previous`, the one before) run of each matching replica here.
    fn find(
        &self,
        namespace: &str,
        workload: &str,
        replica: Option<u32>,
        previous: bool,
    ) -> Vec<LogSource>;
}

#[derive(Clone)]
pub struct LogServer {
    sources: Arc<dyn LogSources>,
    node: String,
    tasks: TaskTracker,
    cancel: CancellationToken,
    streams: Arc<Semaphore>,
    max_streams: usize,
}

impl LogServer {
    /// Streams end when `cancel` fires; `tasks` tracks them so shutdown can wait.
    pub fn new(
        sources: Arc<dyn LogSources>,
        node: String,
        tasks: TaskTracker,
        cancel: CancellationToken,
        max_streams: usize,
    ) -> Self {
        Self {
            sources,
            node,
            tasks,
            cancel,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
        }
    }
}

struct Plan {
    sources: Vec<LogSource>,
    opts: ReadOptions,
    follow: bool,
    limit: Option<u64>,
    node: String,
}

#[tonic::async_trait]
impl LogService for LogServer {
    type StreamLogsStream = ReceiverStream<Result<LogChunk, Status>>;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let req = request.into_inner();
        if req.workload.is_empty() {
            return Err(Status::invalid_argument("workload: must not be empty"));
        }
        let namespace = if req.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            req.namespace.as_str()
        };
        let sources = self
            .sources
            .find(namespace, &req.workload, req.replica, req.previous);
        if sources.is_empty() {
            let which = req
                .replica
                .map_or_else(String::new, |r| format!(" replica {r}"));
            let run = if req.previous { " (previous run)" } else { "" };
            let message = format!(
                "no output of {namespace}/{}{which}{run} on node {}",
                req.workload, self.node
            );
            return Err(Status::not_found(uni_core::error::shorten(
                message,
                uni_core::error::MAX_FIELD_MESSAGE,
            )));
        }
        let stream = match req.stream() {
            LogStream::Stdout => Some(Stream::Stdout),
            LogStream::Stderr => Some(Stream::Stderr),
            LogStream::Unspecified => None,
        };
        let since_nanos = req.since_time.map(|t| {
            t.seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nanos))
        });
        let plan = Plan {
            sources,
            opts: ReadOptions {
                stream,
                since_nanos,
                tail_lines: req.tail_lines,
            },
            follow: req.follow,
            limit: req.limit_bytes,
            node: self.node.clone(),
        };
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "node {} serves at most {} log streams at once; try again later",
                self.node, self.max_streams
            )));
        };
        let (tx, rx) = mpsc::channel(16);
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            serve(plan, tx, cancel).await;
            drop(permit);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

type Tx = mpsc::Sender<Result<LogChunk, Status>>;

/// Entries of several replicas, each with its replica and source index.
type Batch = Vec<(u32, usize, Entry)>;

/// Reads the history of every source and where following goes on from.
fn read_history(plan: &Plan) -> std::io::Result<(Batch, Vec<Follower>)> {
    let mut history = Vec::new();
    let mut followers = Vec::new();
    for (i, source) in plan.sources.iter().enumerate() {
        let (entries, position) = read_run_at(&source.run_dir, &plan.opts)?;
        history.extend(entries.into_iter().map(|e| (source.replica, i, e)));
        followers.push(Follower::new(&source.run_dir, position, plan.opts.clone()));
    }
    // Replicas interleaved by time; each replica's own order kept.
    history.sort_by_key(|(_, i, e)| (e.nanos, *i));
    Ok((history, followers))
}

/// New output of every source since the last poll, interleaved by time.
fn poll(plan: &Plan, followers: &mut [Follower]) -> Batch {
    let mut batch = Vec::new();
    for (i, f) in followers.iter_mut().enumerate() {
        if let Ok(entries) = f.poll() {
            batch.extend(entries.into_iter().map(|e| (plan.sources[i].replica, i, e)));
        }
    }
    batch.sort_by_key(|(_, i, e)| (e.nanos, *i));
    batch
}

/// Sends the history, then (following) new output until every run is over, the client goes
/// away or stalls, or the agent stops. Files are read on blocking threads.
async fn serve(plan: Plan, tx: Tx, cancel: CancellationToken) {
    let mut sender = Sender {
        tx,
        node: plan.node.clone(),
        left: plan.limit,
    };
    let plan = Arc::new(plan);
    let p = plan.clone();
    let read = tokio::task::spawn_blocking(move || read_history(&p))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let (history, mut followers) = match read {
        Ok(read) => read,
        Err(e) => {
            sender.fail(format!("reading logs: {e}")).await;
            return;
        }
    };
    if !sender.send(history).await || !plan.follow {
        return;
    }
    loop {
        let over = plan.sources.iter().all(LogSource::over);
        let p = plan.clone();
        let Ok((batch, back)) = tokio::task::spawn_blocking(move || {
            let batch = poll(&p, &mut followers);
            (batch, followers)
        })
        .await
        else {
            return;
        };
        followers = back;
        let empty = batch.is_empty();
        if !sender.send(batch).await || (over && empty) {
            return;
        }
        if empty {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = cancel.cancelled() => return,
                _ = sender.tx.closed() => return,
            }
        } else if cancel.is_cancelled() {
            return;
        }
    }
}

struct Sender {
    tx: Tx,
    node: String,
    left: Option<u64>,
}

impl Sender {
    /// One chunk; false when the client is gone or has taken nothing for [`STALL`].
    async fn put(&self, chunk: LogChunk) -> bool {
        matches!(
            tokio::time::timeout(STALL, self.tx.send(Ok(chunk))).await,
            Ok(Ok(()))
        )
    }

    async fn fail(&self, message: String) {
        let _ = tokio::time::timeout(STALL, self.tx.send(Err(Status::internal(message)))).await;
    }

    /// Sends entries as chunks of consecutive lines of one replica and stream; false when the
    /// stream should end (client gone or stalled, or byte limit reached).
    async fn send(&mut self, entries: Batch) -> bool {
        let mut chunk: Option<LogChunk> = None;
        for (replica, _, e) in entries {
            let mut data = e.output();
            if let Some(left) = self.left {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                data.truncate(take);
                self.left = Some(left - take as u64);
            }
            let stream = match e.stream {
                Stream::Stdout => LogStream::Stdout,
                Stream::Stderr => LogStream::Stderr,
            };
            let fits = chunk.as_ref().is_some_and(|c| {
                c.replica == replica
                    && c.stream == stream as i32
                    && c.data.len() + data.len() <= MAX_CHUNK
            });
            if fits {
                if let Some(c) = chunk.as_mut() {
                    c.data.extend_from_slice(&data);
                }
            } else {
                if let Some(c) = chunk.take() {
                    if !self.put(c).await {
                        return false;
                    }
                }
                chunk = Some(LogChunk {
                    replica,
                    stream: stream as i32,
                    data,
                    timestamp: Some(prost_types::Timestamp {
                        seconds: e.nanos.div_euclid(1_000_000_000),
                        nanos: i32::try_from(e.nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
                    }),
                    node: self.node.clone(),
                });
            }
            if self.left == Some(0) {
                break;
            }
        }
        if let Some(c) = chunk.take() {
            if !c.data.is_empty() && !self.put(c).await {
                return false;
            }
        }
        self.left != Some(0)
    }
}
