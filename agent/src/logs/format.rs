//! One log line on disk: `{unix nanos} {O|E} {F|P} {bytes}\n`.

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn tag(self) -> u8 {
        match self {
            Stream::Stdout => b'O',
            Stream::Stderr => b'E',
        }
    }
}

/// One line (or piece of a line) of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the first byte was read, nanoseconds since the Unix epoch.
    pub nanos: i64,
    pub stream: Stream,
    /// The bytes end a line: a newline follows them in the output.
    pub full: bool,
    pub data: Vec<u8>,
}

impl Entry {
    /// The encoded line, with its newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 26);
        out.extend_from_slice(self.nanos.to_string().as_bytes());
        out.push(b' ');
        out.push(self.stream.tag());
        out.push(b' ');
        out.push(if self.full { b'F' } else { b'P' });
        out.push(b' ');
        out.extend_from_slice(&self.data);
        out.push(b'\n');
        out
    }

    /// Parses one stored line (without its newline); `None` for a malformed one.
    pub fn decode(line: &[u8]) -> Option<Entry> {
        let mut parts = line.splitn(4, |&b| b == b' ');
        let nanos = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let stream = match parts.next()? {
            b"O" => Stream::Stdout,
            b"E" => Stream::Stderr,
            _ => return None,
        };
        let full = match parts.next()? {
            b"F" => true,
            b"P" => false,
            _ => return None,
        };
        Some(Entry {
            nanos,
            stream,
            full,
            data: parts.next().unwrap_or_default().to_vec(),
        })
    }

    /// The output bytes this entry stands for (a full line gets its newline back).
    pub fn output(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        if self.full {
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_spaces_and_binary() {
        let e = Entry {
            nanos: 1_700_000_000_123_456_789,
            stream: Stream::Stderr,
            full: true,
            data: b"a b \xff c".to_vec(),
        };
        let line = e.encode();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(Entry::decode(&line[..line.len() - 1]), Some(e.clone()));
        assert_eq!(e.output(), b"a b \xff c\n".to_vec());
        assert_eq!(Entry::decode(b"x O F y"), None);
        let empty = Entry::decode(b"5 O P ").unwrap();
        assert!(empty.data.is_empty() && !empty.full);
    }
}
