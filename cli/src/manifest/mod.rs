//! Manifests: YAML (or JSON) documents of `apiVersion: universal/v1`, `kind`, `metadata`,
//! `spec`, several per file. Every problem is reported with the file and line it comes from,
//! and checked locally with the same validation the server runs, before anything is sent.

mod locate;
mod read;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use uni_core::error::{shorten, MAX_FIELD_MESSAGE};
use uni_core::model::{
    InferenceServiceSpec, ObjectMeta, Queue, QueueSpec, TrainingJobSpec, Workload, WorkloadSpec,
    DEFAULT_NAMESPACE,
};
use uni_core::validate::{validate_queue, validate_workload};

pub use read::read_sources;

pub const API_VERSION: &str = "universal/v1";
pub const KINDS: [&str; 3] = ["InferenceService", "TrainingJob", "Queue"];

/// One object from a manifest, with where it came from.
#[derive(Debug, Clone)]
pub struct Doc {
    pub object: Object,
    pub source: String,
    /// 1-based line where the document starts.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // Few objects at a time; boxing would only add noise.
pub enum Object {
    Workload(Workload),
    Queue(Queue),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Workload(w) => w.kind().as_str(),
            Object::Queue(_) => "Queue",
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Workload(w) => &w.meta,
            Object::Queue(q) => &q.meta,
        }
    }

    /// `kind/name` as kubectl prints it, e.g. `inferenceservice/web`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind().to_ascii_lowercase(), self.meta().name)
    }
}

/// A problem in a manifest, at `source:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub source: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Every problem found in the given manifests.
#[derive(Debug)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope<S> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: S,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Metadata {
    fn into_meta(self, namespaced: bool) -> ObjectMeta {
        let namespace = match (namespaced, self.namespace.is_empty()) {
            (false, _) => String::new(),
            (true, true) => DEFAULT_NAMESPACE.to_string(),
            (true, false) => self.namespace,
        };
        ObjectMeta {
            name: self.name,
            namespace,
            labels: self.labels,
            annotations: self.annotations,
            ..ObjectMeta::default()
        }
    }
}

/// Parses every document of one source (`-` for standard input).
pub fn parse(source: &str, text: &str) -> Result<Vec<Doc>, ManifestErrors> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (start, body) in split_documents(text) {
        if body.trim().is_empty() {
            continue;
        }
        let err = |line: usize, message: String| ManifestError {
            source: source.to_string(),
            line,
            message,
        };
        match parse_document(body) {
            Ok(object) => {
                let meta = object.meta();
                let id = (
                    object.kind().to_string(),
                    meta.namespace.clone(),
                    meta.name.clone(),
                );
                if let Some(first) = seen.get(&id) {
                    errors.push(err(
                        start,
                        format!(
                            "duplicate document: {} {} is also defined at line {first}",
                            object.kind(),
                            meta.key()
                        ),
                    ));
                    continue;
                }
                seen.insert(id, start);
                docs.push(Doc {
                    object,
                    source: source.to_string(),
                    line: start,
                });
            }
            Err(problems) => {
                errors.extend(
                    problems
                        .into_iter()
                        .map(|(line, message)| err(start + line - 1, message)),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Splits on `---` separator lines; yields each document's first line (1-based) and text.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start_line = 1;
    let mut start_byte = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            out.push((start_line, &text[start_byte..offset]));
            start_line = i + 2;
            start_byte = offset + line.len();
        }
        offset += line.len();
    }
    out.push((start_line, &text[start_byte..]));
    out
}

/// Problems as (line within the document, message).
type Problems = Vec<(usize, String)>;

fn parse_document(body: &str) -> Result<Object, Problems> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(body).map_err(|e| vec![yaml_problem(&e)])?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let at = |path: &str| locate::line_of(body, path);
    let api_version = field("apiVersion");
    match api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(vec![(
                at("apiVersion"),
                format!("apiVersion: unsupported {other:?}, expected {API_VERSION:?}"),
            )])
        }
        None => return Err(vec![(1, format!("apiVersion: required ({API_VERSION:?})"))]),
    }
    let kind = field("kind").unwrap_or_default();
    let object = match kind.as_str() {
        "InferenceService" => {
            let (meta, spec) = typed::<InferenceServiceSpec>(body, true)?;
            Object::Workload(Workload {
                meta,
                spec: WorkloadSpec::Inference(spec),
                ..Workload::default()
            })
        }
        "TrainingJob" => {
            let (meta, spec) = typed::<TrainingJobSpec>(body, true)?;
            Object::Workload(Workload {
                meta,
                spec: WorkloadSpec::Training(spec),
                ..Workload::default()
            })
        }
        "Queue" => {
            let (meta, spec) = typed::<QueueSpec>(body, false)?;
            Object::Queue(Queue {
                meta,
                spec,
                ..Queue::default()
            })
        }
        "" => {
            return Err(vec![(
                1,
                format!("kind: required, one of {}", KINDS.join(", ")),
            )])
        }
        other => {
            return Err(vec![(
                at("kind"),
                format!(
                    "kind: unknown kind {other:?}, expected one of {}",
                    KINDS.join(", ")
                ),
            )])
        }
    };
    let checked = match &object {
        Object::Workload(w) => validate_workload(w),
        Object::Queue(q) => validate_queue(q),
    };
    match checked {
        Ok(()) => Ok(object),
        Err(uni_core::Error::Invalid(fields)) => Err(fields
            .0
            .into_iter()
            .map(|f| {
                // The domain calls it `meta`; manifests call it `metadata`.
                let path = match f.path.strip_prefix("meta.") {
                    Some(rest) => format!("metadata.{rest}"),
                    None => f.path,
                };
                (at(&path), format!("{path}: {}", f.message))
            })
            .collect()),
        Err(other) => Err(vec![(1, other.to_string())]),
    }
}

fn typed<S: DeserializeOwned + Default>(
    body: &str,
    namespaced: bool,
) -> Result<(ObjectMeta, S), Problems> {
    let env: Envelope<S> = serde_yaml::from_str(body).map_err(|e| vec![yaml_problem(&e)])?;
    Ok((env.metadata.into_meta(namespaced), env.spec))
}

fn yaml_problem(e: &serde_yaml::Error) -> (usize, String) {
    let line = e.location().map_or(1, |l| l.line());
    // The location is reported separately; drop serde_yaml's own " at line N column M".
    let text = e.to_string();
    let message = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    // serde quotes the offending value whole, however long.
    (line, shorten(message, MAX_FIELD_MESSAGE))
}

#[cfg(test)]
mod tests;
