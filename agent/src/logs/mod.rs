//! Replica output: the shim writes stdout and stderr, timestamped line by line, to size-rotated
//! files in the run's directory; the agent serves them over gRPC (`LogService.StreamLogs`).
//!
//! A run's files are `output.log` (current) and `output.log.1` .. `output.log.N` (older). Each
//! line of a file is `{unix nanos} {O|E} {F|P} {bytes}`: stream (stdout/stderr), and whether the
//! bytes end a line (F) or are a piece of a longer or unterminated one (P).

mod follow;
mod format;
mod reader;
mod service;
mod writer;

pub use format::{Entry, Stream};
pub use reader::{read_run, ReadOptions};
pub use service::{LogServer, LogSource, LogSources, DEFAULT_MAX_STREAMS};
pub use writer::{copy_lines, LogWriter, CURRENT};

/// Default size at which a log file is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept besides the current one.
pub const DEFAULT_MAX_FILES: u32 = 4;
