//! Reading a run's stored output, oldest first, with the request's filters.

use std::io;
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
pub(super) fn read_run_at(dir: &Path, opts: &ReadOptions) -> io::Result<(Vec<Entry>, Position)> {
    let mut entries = Vec::new();
    let mut position = Position::default();
    for path in run_files(dir) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let consumed = decode_lines(&bytes, opts, &mut entries);
        if path.ends_with(CURRENT) {
            let inode = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
            position = Position {
                inode,
                offset: consumed as u64,
            };
        }
    }
    if let Some(n) = opts.tail_lines {
        let start = tail_start(&entries, n);
        entries.drain(..start);
    }
    Ok((entries, position))
}

/// Index of the first entry of the last `n` lines (a line ends at a full entry).
fn tail_start(entries: &[Entry], n: u32) -> usize {
    if n == 0 {
        return entries.len();
    }
    let mut starts = vec![0usize];
    for (i, e) in entries.iter().enumerate() {
        if e.full && i + 1 < entries.len() {
            starts.push(i + 1);
        }
    }
    let keep = (n as usize).min(starts.len());
    starts[starts.len() - keep]
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
