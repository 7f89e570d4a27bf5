use super::*;

const GOOD: &str = "apiVersion: universal/v1
kind: InferenceService
metadata:
  name: web
  labels: {app: web}
spec:
  template:
    command: [python3, -m, http.server]
    resources: {compute: 500m, memory: 256Mi}
  replicas: {min: 1, max: 3, desired: 2}
---
apiVersion: universal/v1
kind: Queue
metadata:
  name: research
spec:
  priority: 100
  weight: 2
";

fn errors(text: &str) -> Vec<String> {
    match parse("f.yaml", text) {
        Ok(docs) => panic!("expected errors, parsed {} documents", docs.len()),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn parses_multi_document_files() {
    let docs = parse("f.yaml", GOOD).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].object.reference(), "inferenceservice/web");
    assert_eq!(docs[0].object.meta().namespace, "default");
    assert_eq!(docs[1].line, 12);
    match &docs[0].object {
        Object::Workload(w) => {
            assert_eq!(w.spec.template().resources.compute_milli, 500);
            assert_eq!(w.spec.desired_replicas(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(docs[1].object, Object::Queue(_)));
}

#[test]
fn json_is_accepted() {
    let json = r#"{"apiVersion": "universal/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"weight": 3}}"#;
    let docs = parse("q.json", json).unwrap();
    assert_eq!(docs[0].object.reference(), "queue/q");
}

#[test]
fn unknown_kind_names_the_line() {
    let e = errors("apiVersion: universal/v1\nkind: Pod\nmetadata: {name: x}\n");
    assert_eq!(
        e,
        ["f.yaml:2: kind: unknown kind \"Pod\", expected one of InferenceService, TrainingJob, Queue"]
    );
}

#[test]
fn unknown_field_names_the_field_and_line() {
    let text = GOOD.replace("  replicas: {min: 1", "  replicaz: 3\n  replicas: {min: 1");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:10: spec: unknown field `replicaz`"),
        "{e:?}"
    );
}

#[test]
fn bad_quantity_names_the_field_and_line() {
    let text = GOOD.replace("memory: 256Mi", "memory: 12Qi");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("f.yaml:9: "), "{e:?}");
    assert!(e[0].contains("12Qi"), "{e:?}");
}

#[test]
fn missing_name_and_other_problems_are_all_reported() {
    let text = GOOD.replace("  name: web\n", "").replace(
        "{min: 1, max: 3, desired: 2}",
        "{min: 4, max: 3, desired: 2}",
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|m| m.starts_with("f.yaml:3: metadata.name:")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("f.yaml:9: spec.replicas")),
        "{e:?}"
    );
}

#[test]
fn duplicate_documents_are_refused() {
    let doc = GOOD.split("---").next().unwrap();
    let e = errors(&format!("{doc}---\n{doc}"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "f.yaml:12: duplicate document: InferenceService default/web is also defined at line 1"
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_api_version() {
    let e = errors("apiVersion: v2\nkind: Queue\nmetadata: {name: q}\n");
    assert_eq!(
        e,
        ["f.yaml:1: apiVersion: unsupported \"v2\", expected \"universal/v1\""]
    );
}

#[test]
fn the_examples_parse_and_validate() {
    let examples = [
        (
            "hello-inference.yaml",
            include_str!("../../../examples/hello-inference.yaml"),
        ),
        (
            "pair-training.yaml",
            include_str!("../../../examples/pair-training.yaml"),
        ),
        (
            "research-queue.yaml",
            include_str!("../../../examples/research-queue.yaml"),
        ),
        (
            "gpu-inference.yaml",
            include_str!("../../../examples/gpu-inference.yaml"),
        ),
    ];
    for (name, text) in examples {
        let docs = parse(name, text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 1, "{name}");
    }
}
