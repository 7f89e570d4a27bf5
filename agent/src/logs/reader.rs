//! Reading a run's stored output, oldest first, with the request's filters.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::format::{Entry, Stream};
use super::writer::CURRENT;

#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only this stream; `None` = both.
    pub stream: Option<Stream>,
    /// Only entries written at or after this time (Unix nanoseconds).
    pub since_nanos: Option<i64>,
    /// Only the last N lines (after the other filters).
    pub tail_lines: Option<u32>,
}

impl ReadOptions {
    pub fn admits(&self, e: &Entry) -> bool {
        self.stream.is_none_or(|s| s == e.stream) && self.since_nanos.is_none_or(|t| e.nanos >= t)
    }
}

/// Where reading stopped in the current file: its inode and the bytes consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub inode: u64,
    pub offset: u64,
}

/// The run's files, oldest first: `output.log.N` .. `output.log.1`, `output.log`.
pub fn run_files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let k: u32 = name
                        .strip_prefix(CURRENT)?
                        .strip_prefix('.')?
                        .parse()
                        .ok()?;
                    Some((k, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(dir.join(CURRENT));
    files
}

/// Decodes the complete lines of `bytes`; returns the entries and the bytes consumed.
pub(super) fn decode_lines(bytes: &[u8], opts: &ReadOptions, out: &mut Vec<Entry>) -> usize {
    let mut consumed = 0;
    while let Some(i) = bytes[consumed..].iter().position(|&b| b == b'\n') {
        if let Some(e) = Entry::decode(&bytes[consumed..consumed + i]) {
            if opts.admits(&e) {
                out.push(e);
            }
        }
        consumed += i + 1;
    }
    consumed
}

/// Every stored entry of the run that passes `opts`.
pub fn read_run(dir: &Path, opts: &ReadOptions) -> io::Result<Vec<Entry>> {
    read_run_at(dir, opts).map(|(entries, _)| entries)
}

/// As [`read_run`], also returning where the current file was left, to follow from there.
/// Files are read line by line, and with `tail_lines` only the last lines are kept as they go
/// by, so a tail of a large run holds what it returns, not the run.
pub(super) fn read_run_at(dir: &Path, opts: &ReadOptions) -> io::Result<(Vec<Entry>, Position)> {
    let mut tail = Tail::new(opts.tail_lines);
    let mut position = Position::default();
    let mut line = Vec::new();
    for path in run_files(dir) {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
        let mut reader = io::BufReader::new(file);
        let mut consumed = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            // A line still being written (no newline yet) is left for the follower.
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            consumed += n as u64;
            if let Some(e) = Entry::decode(&line[..n - 1]) {
                if opts.admits(&e) {
                    tail.push(e);
                }
            }
        }
        if path.ends_with(CURRENT) {
            position = Position {
                inode,
                offset: consumed,
            };
        }
    }
    Ok((tail.into_entries(), position))
}

/// Entries kept so far: all of them, or only those of the last `n` lines.
struct Tail {
    entries: VecDeque<Entry>,
    limit: Option<u32>,
    /// Complete lines (ending at a full entry) among `entries`.
    lines: u32,
}

impl Tail {
    fn new(limit: Option<u32>) -> Self {
        Self {
            entries: VecDeque::new(),
            limit,
            lines: 0,
        }
    }

    fn push(&mut self, e: Entry) {
        let full = e.full;
        self.entries.push_back(e);
        let Some(n) = self.limit else { return };
        if full {
            self.lines += 1;
        }
        // Drop the oldest line while more than n lines (counting a trailing partial one) are
        // held.
        let partial = u32::from(!full);
        while self.lines + partial > n && !self.entries.is_empty() {
            while let Some(front) = self.entries.pop_front() {
                if front.full {
                    self.lines -= 1;
                    break;
                }
            }
        }
    }

    fn into_entries(self) -> Vec<Entry> {
        self.entries.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(nanos: i64, stream: Stream, full: bool, data: &str) -> Entry {
        Entry {
            nanos,
            stream,
            full,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_tail_keeps_only_its_last_lines_as_it_reads() {
        let mut tail = Tail::new(Some(2));
        for i in 0..1000 {
            tail.push(entry(i, Stream::Stdout, true, "x"));
            assert!(tail.entries.len() <= 2, "held {}", tail.entries.len());
        }
        // A line split over two entries counts once; a trailing partial line counts too.
        tail.push(entry(1000, Stream::Stdout, false, "a"));
        tail.push(entry(1001, Stream::Stdout, true, "b"));
        tail.push(entry(1002, Stream::Stdout, false, "c"));
        let kept: Vec<i64> = tail.into_entries().iter().map(|e| e.nanos).collect();
        assert_eq!(kept, vec![1000, 1001, 1002]);
        let mut none = Tail::new(Some(0));
        none.push(entry(1, Stream::Stdout, false, "p"));
        none.push(entry(2, Stream::Stdout, true, "q"));
        assert!(none.into_entries().is_empty());
    }

    #[test]
    fn tail_since_and_stream_filters() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for e in [
            entry(1, Stream::Stdout, true, "one"),
            entry(2, Stream::Stderr, true, "oops"),
            entry(3, Stream::Stdout, false, "tw"),
            entry(3, Stream::Stdout, true, "o"),
            entry(4, Stream::Stdout, true, "three"),
        ] {
            bytes.extend(e.encode());
        }
        bytes.extend_from_slice(b"5 O F half-written"); // no newline yet: not read
        std::fs::write(dir.path().join(CURRENT), &bytes).unwrap();

        let all = read_run(dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(all.len(), 5);
        let tail = read_run(
            dir.path(),
            &ReadOptions {
                tail_lines: Some(2),
                stream: Some(Stream::Stdout),
                ..ReadOptions::default()
            },
        )
        .unwrap();
        let text: Vec<u8> = tail.iter().flat_map(Entry::output).collect();
        assert_eq!(text, b"two\nthree\n");
        let since = read_run(
            dir.path(),
            &ReadOptions {
                since_nanos: Some(2),
                ..ReadOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            since.first().map(|e| e.data.clone()),
            Some(b"oops".to_vec())
        );
        let (_, pos) = read_run_at(dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(
            pos.offset as usize,
            bytes.len() - "5 O F half-written".len()
        );
    }
}
