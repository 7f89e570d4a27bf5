//! Following a run's current file as it grows, across rotations.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::format::Entry;
use super::reader::{decode_lines, run_files, Position, ReadOptions};
use super::writer::CURRENT;

pub(super) struct Follower {
    dir: PathBuf,
    position: Position,
    opts: ReadOptions,
}

fn read_from(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

impl Follower {
    pub(super) fn new(dir: &Path, position: Position, opts: ReadOptions) -> Self {
        // Filters of the history (tail) do not apply to what comes next; `since` still does.
        let opts = ReadOptions {
            tail_lines: None,
            ..opts
        };
        Self {
            dir: dir.to_path_buf(),
            position,
            opts,
        }
    }

    /// Entries written since the last call (complete lines only).
    pub(super) fn poll(&mut self) -> io::Result<Vec<Entry>> {
        let current = self.dir.join(CURRENT);
        let inode = match std::fs::metadata(&current) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        if inode != self.position.inode && self.position.inode != 0 {
            // Rotated: finish the file we were in, then read every newer file.
            let files = run_files(&self.dir);
            let mut found = false;
            for path in files.iter().filter(|p| !p.ends_with(CURRENT)) {
                let ino = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
                if ino == self.position.inode {
                    found = true;
                    let bytes = read_from(path, self.position.offset)?;
                    decode_lines(&bytes, &self.opts, &mut out);
                } else if found {
                    let bytes = std::fs::read(path)?;
                    decode_lines(&bytes, &self.opts, &mut out);
                }
            }
            self.position = Position { inode, offset: 0 };
        } else if self.position.inode == 0 {
            self.position.inode = inode;
        }
        let bytes = read_from(&current, self.position.offset)?;
        let consumed = decode_lines(&bytes, &self.opts, &mut out);
        self.position.offset += consumed as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::logs::format::Stream;
    use crate::logs::reader::read_run_at;
    use crate::logs::writer::LogWriter;

    #[test]
    fn follows_across_rotation_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(Mutex::new(LogWriter::open(dir.path(), 1024, 5).unwrap()));
        let write = |from: u32, to: u32| {
            for i in from..to {
                let e = Entry {
                    nanos: i64::from(i),
                    stream: Stream::Stdout,
                    full: true,
                    data: format!("line {i:04}").into_bytes(),
                };
                w.lock().unwrap().write(&e).unwrap();
            }
        };
        write(0, 10);
        let (history, pos) = read_run_at(dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(history.len(), 10);
        let mut f = Follower::new(dir.path(), pos, ReadOptions::default());
        write(10, 100); // several rotations
        let next = f.poll().unwrap();
        let nanos: Vec<i64> = next.iter().map(|e| e.nanos).collect();
        assert_eq!(nanos, (10..100).collect::<Vec<i64>>());
        assert!(f.poll().unwrap().is_empty());
    }
}
