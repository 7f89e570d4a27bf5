//! The non-Kubernetes deployment files parse, and every Universal metric that the alert rules
//! and the dashboard query is one the scheduler exports (so a renamed metric cannot silently
//! blind an alert).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `universal_*` identifiers in `text`, with histogram suffixes removed.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("universal_") {
        let start = i + pos;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if before_ok {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end;
    }
    out
}

/// Metric names the scheduler registers (scheduler/src/metrics.rs).
fn exported_metrics() -> BTreeSet<String> {
    let src = read("scheduler/src/metrics.rs");
    let mut out = BTreeSet::new();
    for part in src.split('"').skip(1).step_by(2) {
        if let Some(rest) = part.strip_prefix("{p}") {
            out.insert(format!("universal_scheduler_{rest}"));
        } else if part.starts_with("universal_cluster_") {
            out.insert(part.to_string());
        }
    }
    out
}

#[test]
fn alerts_and_dashboard_use_exported_metrics() {
    let exported = exported_metrics();
    assert!(
        exported.contains("universal_scheduler_is_leader"),
        "{exported:?}"
    );
    let alerts = read("deploy/prometheus/alerts.yml");
    let dashboard = read("deploy/grafana/universal.json");
    for (file, text) in [("alerts.yml", &alerts), ("universal.json", &dashboard)] {
        let used = referenced_metrics(text);
        assert!(!used.is_empty(), "{file} queries no metrics");
        let unknown: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the scheduler does not export: {unknown:?}"
        );
    }
    for required in [
        "universal_scheduler_queue_depth",
        "universal_scheduler_placements_total",
        "universal_scheduler_placement_failures_total",
        "universal_cluster_capacity",
        "universal_cluster_allocated",
        "universal_scheduler_placement_duration_seconds",
        "universal_scheduler_submit_to_placed_seconds",
    ] {
        assert!(dashboard.contains(required), "dashboard lacks {required}");
    }
}

#[test]
fn prometheus_files_parse_and_alert_on_what_matters() {
    let config: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).expect("prometheus.yml");
    assert!(config["scrape_configs"]
        .as_sequence()
        .is_some_and(|s| s.len() >= 2));
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    let exprs: Vec<(String, String)> = rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_string(),
                r["expr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let has = |needle: &str| exprs.iter().any(|(_, e)| e.contains(needle));
    assert!(
        has("max(universal_scheduler_is_leader) < 1"),
        "leader missing alert"
    );
    assert!(has("universal_scheduler_placement_duration_seconds_bucket"));
    assert!(has("universal_scheduler_submit_to_placed_seconds_bucket"));
    assert!(has("universal_cluster_nodes{state=\"not_ready\"}"));
    for (alert, expr) in &exprs {
        assert!(
            !alert.is_empty() && !expr.trim().is_empty(),
            "every rule is named and has an expression"
        );
    }
}

#[test]
fn dashboard_is_valid_grafana_json() {
    let d: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/universal.json")).expect("dashboard JSON");
    assert_eq!(d["uid"], "universal-overview");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "panel ids are unique"
        );
        if p["type"] != "row" {
            let targets = p["targets"].as_array().expect("targets");
            assert!(targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())));
        }
    }
}

#[test]
fn systemd_units_are_complete() {
    for (unit, binary) in [
        (
            "deploy/systemd/uni-scheduler.service",
            "/usr/local/bin/uni-scheduler",
        ),
        (
            "deploy/systemd/uni-agent.service",
            "/usr/local/bin/uni-agent",
        ),
    ] {
        let text = read(unit);
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(text.contains(section), "{unit} lacks {section}");
        }
        assert!(text.contains(&format!("ExecStart={binary}")), "{unit}");
        assert!(text.contains("EnvironmentFile=/etc/universal/"), "{unit}");
    }
    // The agent must not take its workloads down when it restarts.
    assert!(read("deploy/systemd/uni-agent.service").contains("KillMode=process"));
}
