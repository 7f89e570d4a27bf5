//! The CRD YAML checked in under deploy/kubernetes/crds/ is exactly what the Rust types
//! generate. Fails when a type changed and the YAML was not regenerated.

use std::path::Path;

#[test]
fn checked_in_crds_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/crds");
    let files = uni_operator::crd::files().expect("generate CRDs");
    let regenerate =
        "regenerate with `cargo run -p uni-operator -- crdgen --out-dir deploy/kubernetes/crds`";
    for (name, generated) in &files {
        let path = dir.join(name);
        let checked_in = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}): {regenerate}", path.display()));
        assert!(
            checked_in == *generated,
            "{} is stale: {regenerate}",
            path.display()
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = files.into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "CRD files without a Rust type: {regenerate}"
    );
}

#[test]
fn crds_are_structural_and_name_their_group() {
    for crd in uni_operator::crd::all() {
        assert_eq!(crd.spec.group, uni_operator::crd::GROUP);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema");
        let spec = schema
            .properties
            .as_ref()
            .and_then(|p| p.get("spec"))
            .expect("spec schema");
        assert_eq!(spec.type_.as_deref(), Some("object"));
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
    }
}
