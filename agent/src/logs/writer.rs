//! Writing a run's output: lines from the process's pipes, timestamped, into size-rotated
//! files.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{Entry, Stream};

/// Name of the file being written.
pub const CURRENT: &str = "output.log";
/// Longer lines are split into pieces of this size.
const MAX_LINE: usize = 16 * 1024;

pub struct LogWriter {
    dir: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    size: u64,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogWriter {
    /// Appends to `dir/output.log`, rotating at `max_bytes` and keeping `max_files` older files.
    pub fn open(dir: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = open_append(&dir.join(CURRENT))?;
        let size = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1024),
            max_files,
            file,
            size,
        })
    }

    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        let line = entry.encode();
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = |k: u32| self.dir.join(format!("{CURRENT}.{k}"));
        if self.max_files == 0 {
            let _ = std::fs::remove_file(self.dir.join(CURRENT));
        } else {
            let _ = std::fs::remove_file(name(self.max_files));
            for k in (1..self.max_files).rev() {
                let _ = std::fs::rename(name(k), name(k + 1));
            }
            std::fs::rename(self.dir.join(CURRENT), name(1))?;
        }
        self.file = open_append(&self.dir.join(CURRENT))?;
        self.size = 0;
        Ok(())
    }
}

/// Copies `input` (a pipe) into `writer` line by line until end of file.
pub fn copy_lines(mut input: impl Read, stream: Stream, writer: &Arc<Mutex<LogWriter>>) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let mut started = 0i64;
    let emit = |data: &[u8], full: bool, nanos: i64| {
        let entry = Entry {
            nanos,
            stream,
            full,
            data: data.to_vec(),
        };
        if let Ok(mut w) = writer.lock() {
            // A full disk loses output; the process must keep running regardless.
            let _ = w.write(&entry);
        }
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let now = now_nanos();
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if pending.is_empty() {
                started = now;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    pending.extend_from_slice(&rest[..i]);
                    emit(&pending, true, started);
                    pending.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    pending.extend_from_slice(rest);
                    rest = &[];
                }
            }
            while pending.len() >= MAX_LINE {
                let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
                emit(&piece, false, started);
                started = now;
            }
        }
    }
    if !pending.is_empty() {
        emit(&pending, false, started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::reader::{read_run, ReadOptions};

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(Mutex::new(LogWriter::open(dir.path(), 1024, 2).unwrap()));
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        copy_lines(text.as_bytes(), Stream::Stdout, &w);
        assert!(dir.path().join("output.log.1").exists());
        assert!(dir.path().join("output.log.2").exists());
        assert!(!dir.path().join("output.log.3").exists());
        let total: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 3 * 1024, "{total}");
        // What is kept is the newest output, in order, ending with the last line.
        let entries = read_run(dir.path(), &ReadOptions::default()).unwrap();
        let last = entries.last().unwrap();
        assert_eq!(last.data, b"line 199");
        let numbers: Vec<u32> = entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data)[5..].parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn splits_long_lines_and_keeps_unterminated_output() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(Mutex::new(LogWriter::open(dir.path(), 1 << 20, 1).unwrap()));
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\ntail");
        copy_lines(text.as_slice(), Stream::Stderr, &w);
        let entries = read_run(dir.path(), &ReadOptions::default()).unwrap();
        let flags: Vec<(usize, bool)> = entries.iter().map(|e| (e.data.len(), e.full)).collect();
        assert_eq!(flags, vec![(MAX_LINE, false), (10, true), (4, false)]);
        assert!(entries.iter().all(|e| e.stream == Stream::Stderr));
    }
}
