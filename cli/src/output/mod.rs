//! How objects are printed: tables (`-o wide` adds columns), YAML and JSON in manifest form,
//! or just `kind/name`.

pub mod table;

use std::str::FromStr;

use serde_json::{json, Value};
use uni_core::model::{Event, Node, Queue, Quota, ResourceAmounts, Workload, WorkloadSpec};
use uni_core::quantity::{format_bytes, format_milli};

use crate::manifest::{Object, API_VERSION};
use table::{age, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "table" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "yaml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            "name" => Ok(Format::Name),
            other => Err(format!(
                "unknown output format {other:?}: use wide, yaml, json or name"
            )),
        }
    }
}

/// Bytes for a table: rounded to one decimal in the largest binary unit (`23.5Gi`); exact
/// quantities are in `-o yaml`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if b >= size {
            let v = b as f64 / size as f64;
            let text = format!("{v:.1}");
            return format!("{}{unit}", text.trim_end_matches(".0"));
        }
    }
    b.to_string()
}

fn dash(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// Which optional columns a workload listing has.
pub struct WorkloadColumns {
    pub wide: bool,
    /// Listing every namespace.
    pub namespace: bool,
    /// Inference services: where the gateway serves each.
    pub endpoint: bool,
}

pub fn workloads_table(ws: &[Workload], cols: &WorkloadColumns, now: i64) -> String {
    let WorkloadColumns {
        wide,
        namespace: all_namespaces,
        endpoint,
    } = *cols;
    let mut headers = vec!["NAME", "KIND", "PHASE", "READY", "AGE"];
    if all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    if endpoint {
        headers.push("ENDPOINT");
    }
    if wide {
        headers.extend(["PLACED", "NODES", "COST/H", "REASON"]);
    }
    let mut t = Table::new(headers);
    for w in ws {
        let s = &w.status;
        let mut row = vec![
            w.meta.name.clone(),
            w.kind().to_string(),
            format!("{:?}", s.phase),
            format!("{}/{}", s.replicas_ready, w.spec.desired_replicas()),
            age(w.meta.created.0, now),
        ];
        if all_namespaces {
            row.insert(0, w.meta.namespace.clone());
        }
        if endpoint {
            row.push(dash(s.endpoint.clone()));
        }
        if wide {
            let mut nodes: Vec<&str> = s.replicas.iter().map(|r| r.node.as_str()).collect();
            nodes.sort();
            nodes.dedup();
            row.extend([
                s.replicas_placed.to_string(),
                dash(nodes.join(",")),
                format!("${:.2}", s.cost_per_hour),
                dash(s.reason.clone()),
            ]);
        }
        t.row(row);
    }
    t.render()
}

fn node_status(n: &Node) -> String {
    let mut s = if n.status.ready { "Ready" } else { "NotReady" }.to_string();
    if n.spec.cordoned {
        s.push_str(",SchedulingDisabled");
    }
    if n.status.draining {
        s.push_str(",Draining");
    }
    s
}

fn accelerators(n: &Node) -> String {
    let mut models: Vec<(String, usize)> = Vec::new();
    for d in &n.status.inventory.accelerators {
        match models.iter_mut().find(|(m, _)| *m == d.model) {
            Some((_, c)) => *c += 1,
            None => models.push((d.model.clone(), 1)),
        }
    }
    if models.is_empty() {
        return "-".into();
    }
    models
        .iter()
        .map(|(m, c)| format!("{c}x{m}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn nodes_table(nodes: &[Node], wide: bool) -> String {
    let mut headers = vec![
        "NAME",
        "STATUS",
        "CLASS",
        "COMPUTE",
        "MEMORY",
        "ACCELERATORS",
        "REPLICAS",
    ];
    if wide {
        headers.extend(["ADDRESS", "PRICE/H", "AGENT"]);
    }
    let mut t = Table::new(headers);
    for n in nodes {
        let s = &n.status;
        let mut row = vec![
            n.meta.name.clone(),
            node_status(n),
            dash(s.node_class.clone()),
            format!(
                "{}/{}",
                format_milli(s.allocated.compute_milli),
                format_milli(s.allocatable.compute_milli)
            ),
            format!(
                "{}/{}",
                human_bytes(s.allocated.memory_bytes),
                human_bytes(s.allocatable.memory_bytes)
            ),
            accelerators(n),
            s.replicas.to_string(),
        ];
        if wide {
            row.extend([
                dash(s.address.clone()),
                format!("${:.2}", s.price_per_hour),
                dash(s.agent_version.clone()),
            ]);
        }
        t.row(row);
    }
    t.render()
}

/// `kubectl top nodes`: use as a share of what may be allocated.
pub fn top_nodes_table(nodes: &[Node]) -> String {
    let pct = |used: u64, total: u64| {
        (used * 100)
            .checked_div(total)
            .map_or_else(|| "-".to_string(), |p| format!("{p}%"))
    };
    let mut t = Table::new(vec![
        "NAME",
        "COMPUTE",
        "COMPUTE%",
        "MEMORY",
        "MEMORY%",
        "ACCELERATORS%",
    ]);
    for n in nodes {
        let (a, c) = (&n.status.allocated, &n.status.allocatable);
        t.row(vec![
            n.meta.name.clone(),
            format_milli(a.compute_milli),
            pct(a.compute_milli, c.compute_milli),
            human_bytes(a.memory_bytes),
            pct(a.memory_bytes, c.memory_bytes),
            pct(a.device_milli, c.device_milli),
        ]);
    }
    t.render()
}

pub fn quota(q: &Quota) -> String {
    let mut parts = Vec::new();
    if let Some(c) = q.compute_milli {
        parts.push(format!("compute={}", format_milli(c)));
    }
    if let Some(m) = q.memory_bytes {
        parts.push(format!("memory={}", format_bytes(m)));
    }
    if let Some(d) = q.devices {
        parts.push(format!("devices={d}"));
    }
    if let Some(m) = q.device_memory_bytes {
        parts.push(format!("deviceMemory={}", format_bytes(m)));
    }
    dash(parts.join(","))
}

/// Nonzero amounts, `compute=4,devices=2`; `-` for none.
pub fn held(a: &ResourceAmounts) -> String {
    let mut parts = Vec::new();
    if a.compute_milli > 0 {
        parts.push(format!("compute={}", format_milli(a.compute_milli)));
    }
    if a.memory_bytes > 0 {
        parts.push(format!("memory={}", format_bytes(a.memory_bytes)));
    }
    if a.device_milli > 0 {
        let d = format_milli(a.device_milli);
        parts.push(format!("devices={d}"));
    }
    if a.device_memory_bytes > 0 {
        parts.push(format!(
            "deviceMemory={}",
            format_bytes(a.device_memory_bytes)
        ));
    }
    dash(parts.join(","))
}

/// Queues with what they are guaranteed, use, borrow and lend, and what waits.
pub fn queues_table(qs: &[Queue], now: i64) -> String {
    let mut t = Table::new(vec![
        "NAME",
        "PARENT",
        "GUARANTEED",
        "USED",
        "BORROWED",
        "LENT",
        "PENDING",
        "RUNNING",
        "MAX",
        "WEIGHT",
        "AGE",
    ]);
    for q in qs {
        t.row(vec![
            q.meta.name.clone(),
            dash(q.spec.parent.clone()),
            quota(&q.spec.guaranteed),
            held(&q.status.usage),
            held(&q.status.borrowed),
            held(&q.status.lent),
            q.status.pending_workloads.to_string(),
            q.status.running_workloads.to_string(),
            quota(&q.spec.max),
            q.spec.weight.to_string(),
            age(q.meta.created.0, now),
        ]);
    }
    t.render()
}

pub fn events_table(events: &[Event], now: i64) -> String {
    let mut t = Table::new(vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    for e in events {
        let count = if e.count > 1 {
            format!(" (x{})", e.count)
        } else {
            String::new()
        };
        t.row(vec![
            format!("{}{count}", age(e.last_seen.0, now)),
            format!("{:?}", e.event_type),
            e.reason.clone(),
            format!(
                "{}/{}",
                e.involved.kind.to_ascii_lowercase(),
                e.involved.name
            ),
            e.message.clone(),
        ]);
    }
    t.render()
}

/// The manifest form of an object as stored: what `-o yaml` and `-o json` print.
pub fn manifest(object: &Object) -> Value {
    let meta = object.meta();
    let mut metadata = json!({ "name": meta.name });
    if !meta.namespace.is_empty() {
        metadata["namespace"] = json!(meta.namespace);
    }
    if !meta.labels.is_empty() {
        metadata["labels"] = json!(meta.labels);
    }
    if !meta.annotations.is_empty() {
        metadata["annotations"] = json!(meta.annotations);
    }
    metadata["uid"] = json!(meta.uid);
    metadata["generation"] = json!(meta.generation);
    metadata["resourceVersion"] = json!(meta.resource_version.to_string());
    let (spec, status) = match object {
        Object::Workload(w) => {
            let spec = match &w.spec {
                WorkloadSpec::Inference(s) => serde_json::to_value(s),
                WorkloadSpec::Training(s) => serde_json::to_value(s),
            };
            (spec, serde_json::to_value(&w.status))
        }
        Object::Queue(q) => (
            serde_json::to_value(&q.spec),
            serde_json::to_value(&q.status),
        ),
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": object.kind(),
        "metadata": metadata,
        "spec": spec.unwrap_or(Value::Null),
        "status": status.unwrap_or(Value::Null),
    })
}

/// Prints objects as YAML (documents separated by `---`), JSON (a list when several) or names.
pub fn render_objects(objects: &[Object], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Name => objects
            .iter()
            .map(|o| format!("{}\n", o.reference()))
            .collect(),
        Format::Json => {
            let values: Vec<Value> = objects.iter().map(manifest).collect();
            let v = if values.len() == 1 {
                values.into_iter().next().unwrap_or(Value::Null)
            } else {
                json!({ "apiVersion": API_VERSION, "kind": "List", "items": values })
            };
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        _ => {
            let mut out = String::new();
            for (i, o) in objects.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_yaml::to_string(&manifest(o))?);
            }
            out
        }
    })
}
