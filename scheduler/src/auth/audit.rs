//! The audit log: one JSON line per mutating call — who, what, when, and how it ended.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use tonic::Code;
use tracing::warn;
use uni_core::model::{Resource, UnixMillis, Verb};

use super::subject::Subject;

#[derive(Debug, Serialize)]
struct Record<'a> {
    /// Unix milliseconds.
    time: i64,
    user: &'a str,
    groups: &'a [String],
    verb: String,
    resource: String,
    namespace: &'a str,
    name: &'a str,
    /// gRPC code name: "OK", "PERMISSION_DENIED", ...
    result: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

pub struct AuditLog {
    out: Mutex<LineWriter<File>>,
}

/// One audited call.
pub struct Entry<'a> {
    pub who: &'a Subject,
    pub verb: Verb,
    pub resource: Resource,
    pub namespace: &'a str,
    pub name: &'a str,
    pub code: Code,
    pub message: &'a str,
}

impl AuditLog {
    /// Appends to `path`, creating it (mode 0600: it names who did what).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            out: Mutex::new(LineWriter::new(file)),
        })
    }

    pub fn record(&self, e: &Entry<'_>) {
        let record = Record {
            time: UnixMillis::now().0,
            user: &e.who.user,
            groups: &e.who.groups,
            verb: e.verb.to_string(),
            resource: e.resource.to_string(),
            namespace: e.namespace,
            name: e.name,
            result: code_name(e.code),
            message: e.message,
        };
        let Ok(mut line) = serde_json::to_vec(&record) else {
            return;
        };
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = out.write_all(&line) {
            warn!(error = %err, "cannot write the audit log");
        }
    }
}

/// The code as gRPC documents name it.
fn code_name(code: Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter()
                .chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_naming_who_and_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let who = Subject::new("alice", vec!["team-a".into()]);
        for code in [Code::Ok, Code::PermissionDenied] {
            log.record(&Entry {
                who: &who,
                verb: Verb::Create,
                resource: Resource::Workloads,
                namespace: "a",
                name: "llm",
                code,
                message: "",
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["user"], "alice");
        assert_eq!(lines[0]["verb"], "create");
        assert_eq!(lines[0]["resource"], "workloads");
        assert_eq!(lines[0]["result"], "OK");
        assert_eq!(lines[1]["result"], "PERMISSION_DENIED");
    }
}
