//! Tests of the builtin catalog's content and of loading and validation.

use super::*;

fn builtin() -> Catalog {
    match Catalog::builtin() {
        Ok(catalog) => catalog,
        Err(e) => panic!("builtin catalog must load: {e}"),
    }
}

fn load_err(yaml: &str) -> String {
    match Catalog::from_yaml(yaml) {
        Ok(_) => panic!("catalog should have been rejected"),
        Err(Error::Catalog(message)) => message,
        Err(other) => panic!("expected Error::Catalog, got {other:?}"),
    }
}

/// A small valid catalog that the negative tests break one field at a time.
const SMALL: &str = r#"
version: 1
ucu_reference: {cpu: ref-cpu, definition: "one ref thread", source: "by definition"}
cpu_pricing: {usd_per_ucu_hour: 0.04, usd_per_gib_hour: 0.004, source: "example"}
cpus:
  - {name: ref-cpu, aliases: ["Ref CPU 1000"], ucu_per_core: 1.0, source: "reference"}
  - {name: generic, generic: true, ucu_per_core: 1.0, source: "fallback"}
accelerators:
  - name: gpu-a
    vendor: acme
    aliases: ["Acme A"]
    memory_gib: 16
    throughput: {dense_tflops: 100, dtype: bf16, source: "datasheet A"}
    interconnect: {kind: pcie, generation: 4, bandwidth_gb_per_s: 64}
    price: {usd_per_hour: 1.0, source: "price list A"}
  - name: gpu-b
    vendor: acme
    aliases: ["Acme B"]
    memory_gib: 80
    throughput: {dense_tflops: 300, dtype: bf16, source: "datasheet B"}
    interconnect: {kind: nvlink, generation: 3, bandwidth_gb_per_s: 600}
    price: {usd_per_hour: 3.0, source: "price list B"}
"#;

#[test]
fn small_catalog_loads() {
    let catalog = match Catalog::from_yaml(SMALL) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(catalog.accelerators().len(), 2);
    assert_eq!(
        catalog.accelerator("acme a").map(|a| a.name.as_str()),
        Some("gpu-a")
    );
    assert_eq!(
        catalog.accelerator("GPU-B").map(|a| a.name.as_str()),
        Some("gpu-b")
    );
    assert_eq!(catalog.cpu("Ref CPU 1000").name, "ref-cpu");
    assert_eq!(catalog.cpu("unknown").name, "generic");
}

#[test]
fn builtin_catalog_parses() {
    let catalog = builtin();
    assert!(catalog.cpus().len() >= 8);
    assert!(catalog.accelerators().len() >= 16);
    assert_eq!(catalog.reference().cpu, "intel-xeon-platinum-8375c");
    assert!(catalog.cpu_pricing().usd_per_ucu_hour > 0.0);
    assert!(catalog.cpu_pricing().usd_per_gib_hour > 0.0);
}

#[test]
fn every_builtin_figure_has_a_source() {
    let catalog = builtin();
    assert!(!catalog.reference().source.trim().is_empty());
    assert!(!catalog.cpu_pricing().source.trim().is_empty());
    for cpu in catalog.cpus() {
        assert!(!cpu.source.trim().is_empty(), "{} has no source", cpu.name);
    }
    for acc in catalog.accelerators() {
        assert!(
            !acc.throughput.source.trim().is_empty(),
            "{} has no throughput source",
            acc.name
        );
        assert!(
            !acc.price.source.trim().is_empty(),
            "{} has no price source",
            acc.name
        );
    }
}

#[test]
fn sources_name_a_url_or_say_what_they_are() {
    // A source is either a citation (a URL) or an honest label for a number that is not one.
    let honest = |s: &str| {
        s.contains("https://")
            || s.contains("ASSUMPTION")
            || s.contains("Assumption")
            || s.contains("assumption")
            || s.contains("by definition")
            || s.contains("Reference CPU")
            || s.contains("Fallback")
            || s.contains("estimate")
    };
    let catalog = builtin();
    for cpu in catalog.cpus() {
        assert!(honest(&cpu.source), "{}: {}", cpu.name, cpu.source);
    }
    for acc in catalog.accelerators() {
        assert!(honest(&acc.throughput.source), "{}: throughput", acc.name);
        assert!(honest(&acc.price.source), "{}: price", acc.name);
    }
}

#[test]
fn required_models_resolve_from_their_nvml_names() {
    let catalog = builtin();
    let cases = [
        ("Tesla T4", "nvidia-t4"),
        ("NVIDIA A10", "nvidia-a10"),
        ("NVIDIA A10G", "nvidia-a10g"),
        ("NVIDIA L4", "nvidia-l4"),
        ("NVIDIA L40S", "nvidia-l40s"),
        ("Tesla V100-SXM2-16GB", "nvidia-v100-16gb"),
        ("Tesla V100-PCIE-16GB", "nvidia-v100-16gb"),
        ("Tesla V100-SXM2-32GB", "nvidia-v100-32gb"),
        ("Tesla V100S-PCIE-32GB", "nvidia-v100-32gb"),
        ("NVIDIA A100-SXM4-40GB", "nvidia-a100-40gb"),
        ("NVIDIA A100-PCIE-40GB", "nvidia-a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "nvidia-a100-80gb"),
        ("NVIDIA A100 80GB PCIe", "nvidia-a100-80gb"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-sxm"),
        ("NVIDIA H100 PCIe", "nvidia-h100-pcie"),
        ("NVIDIA H100 NVL", "nvidia-h100-nvl"),
        ("NVIDIA H200", "nvidia-h200"),
        ("Tesla P100-PCIE-16GB", "nvidia-p100-16gb"),
        ("Tesla P100-SXM2-16GB", "nvidia-p100-16gb"),
        // Case and separators do not matter.
        ("nvidia a100 sxm4 80gb", "nvidia-a100-80gb"),
        ("TESLA_T4", "nvidia-t4"),
        // Canonical names resolve to themselves.
        ("nvidia-h100-sxm", "nvidia-h100-sxm"),
    ];
    for (name, expected) in cases {
        let found = catalog.accelerator(name).map(|a| a.name.as_str());
        assert_eq!(found, Some(expected), "{name}");
    }
}

#[test]
fn openb_models_resolve() {
    let catalog = builtin();
    let cases = [
        ("G2", "openb-g2"),
        ("G3", "openb-g3"),
        ("P100", "nvidia-p100-16gb"),
        ("V100M16", "nvidia-v100-16gb"),
        ("V100M32", "nvidia-v100-32gb"),
        ("T4", "nvidia-t4"),
        ("A10", "nvidia-a10"),
    ];
    for (name, expected) in cases {
        let found = catalog.accelerator(name).map(|a| a.name.as_str());
        assert_eq!(found, Some(expected), "{name}");
    }
}

#[test]
fn only_the_undisclosed_models_are_assumed() {
    let catalog = builtin();
    let assumed: Vec<&str> = catalog
        .accelerators()
        .iter()
        .filter(|a| a.assumed)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(assumed, ["openb-g2", "openb-g3"]);
}

#[test]
fn similar_names_do_not_collide() {
    let catalog = builtin();
    let name = |n: &str| catalog.accelerator(n).map(|a| a.name.clone());
    assert_eq!(name("A10").as_deref(), Some("nvidia-a10"));
    assert_eq!(name("A10G").as_deref(), Some("nvidia-a10g"));
    assert_eq!(
        name("NVIDIA A100-SXM4-40GB").as_deref(),
        Some("nvidia-a100-40gb")
    );
    assert_eq!(name("NVIDIA L4").as_deref(), Some("nvidia-l4"));
    assert_eq!(name("NVIDIA L40S").as_deref(), Some("nvidia-l40s"));
    assert_eq!(name("NVIDIA GeForce RTX 4090"), None);
    assert_eq!(
        name("Tesla P100-PCIE-12GB"),
        None,
        "the 12 GB P100 is not listed"
    );
    assert_eq!(name(""), None);
}

#[test]
fn builtin_figures_are_as_documented() {
    let catalog = builtin();
    let get = |n: &str| match catalog.accelerator(n) {
        Some(a) => a.clone(),
        None => panic!("{n} missing"),
    };
    let a100 = get("nvidia-a100-80gb");
    assert_eq!(a100.memory_bytes, 80 * GIB);
    assert_eq!(a100.throughput.dense_tflops, 312.0);
    assert_eq!(a100.throughput.dtype, TflopsDtype::Bf16);
    assert_eq!(a100.interconnect.kind, InterconnectKind::Nvlink);
    assert!(a100.interconnect.kind.is_fast());

    let t4 = get("T4");
    assert_eq!(t4.memory_bytes, 16 * GIB);
    assert_eq!(t4.throughput.dtype, TflopsDtype::Fp16);
    assert!(!t4.interconnect.kind.is_fast());

    let h200 = get("NVIDIA H200");
    assert!(h200.memory_bytes > get("NVIDIA H100 80GB HBM3").memory_bytes);
}

#[test]
fn builtin_prices_are_ordered_sensibly() {
    // Guards against data-entry slips: within a family, more memory or a newer part costs more.
    let catalog = builtin();
    let price = |n: &str| match catalog.device_usd_per_hour(n) {
        Some(p) => p,
        None => panic!("{n} missing"),
    };
    assert!(price("T4") < price("L4"));
    assert!(price("L4") < price("L40S"));
    assert!(price("V100M16") < price("V100M32"));
    assert!(price("NVIDIA A100-SXM4-40GB") < price("NVIDIA A100-SXM4-80GB"));
    assert!(price("NVIDIA A100-SXM4-80GB") < price("NVIDIA H100 80GB HBM3"));
    assert!(price("NVIDIA H100 80GB HBM3") < price("NVIDIA H200"));
    for acc in catalog.accelerators() {
        assert!(
            acc.usd_per_hour() > 0.0 && acc.usd_per_hour() < 50.0,
            "{}",
            acc.name
        );
    }
}

#[test]
fn derived_prices_match_their_instances() {
    let catalog = builtin();
    let cpu = catalog.cpu_pricing();
    for acc in catalog.accelerators() {
        if let Some(instance) = &acc.price.derived_from {
            let derived = instance.device_usd_per_hour(cpu);
            assert!(
                (derived - acc.price.usd_per_hour).abs() < 0.001,
                "{}: catalog says {}, {} implies {derived}",
                acc.name,
                acc.price.usd_per_hour,
                instance.instance
            );
        }
    }
}

#[test]
fn cpu_models_resolve_with_generic_fallback() {
    let catalog = builtin();
    let cases = [
        (
            "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            "intel-xeon-platinum-8375c",
        ),
        (
            "Intel(R) Xeon(R) Platinum 8480+",
            "intel-xeon-sapphire-rapids",
        ),
        (
            "Intel(R) Xeon(R) Platinum 8488C",
            "intel-xeon-sapphire-rapids",
        ),
        (
            "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
            "intel-xeon-cascade-lake",
        ),
        (
            "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz",
            "intel-xeon-broadwell-e5-2686v4",
        ),
        ("AMD EPYC 7R13 Processor", "amd-epyc-7r13"),
        ("AMD EPYC 7763 64-Core Processor", "amd-epyc-milan"),
        ("AMD EPYC 7R32", "amd-epyc-rome"),
        ("AMD EPYC 7742 64-Core Processor", "amd-epyc-rome"),
        ("AMD EPYC 9R14 Processor", "amd-epyc-9r14"),
        ("AMD EPYC 9654 96-Core Processor", "amd-epyc-genoa"),
        ("Some Future CPU 9000", "generic"),
        ("", "generic"),
    ];
    for (model, expected) in cases {
        assert_eq!(catalog.cpu(model).name, expected, "{model}");
    }
    assert_eq!(
        catalog.ucu_per_core("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"),
        1.0
    );
    assert_eq!(catalog.ucu_per_core("unknown"), 1.0);
    assert!(catalog.generic_cpu().generic);
}

#[test]
fn milli_ucu_scales_by_the_cpu_factor() {
    let catalog = builtin();
    // An unknown CPU counts one-for-one, so trace CPU counts keep their meaning.
    assert_eq!(catalog.milli_ucu("unknown", 96_000), 96_000);
    assert_eq!(
        catalog.milli_ucu("Intel(R) Xeon(R) Platinum 8480+", 1_000),
        1_150
    );
    assert_eq!(catalog.milli_ucu("AMD EPYC 7R32", 500), 400);
    assert_eq!(catalog.generic_cpu().milli_ucu(u64::MAX), u64::MAX);
}

#[test]
fn price_helpers() {
    let catalog = builtin();
    let pricing = catalog.cpu_pricing().clone();
    assert!((catalog.compute_usd_per_hour(1_000) - pricing.usd_per_ucu_hour).abs() < 1e-12);
    assert!((catalog.compute_usd_per_hour(2_500) - 2.5 * pricing.usd_per_ucu_hour).abs() < 1e-12);
    assert!((catalog.memory_usd_per_hour(GIB) - pricing.usd_per_gib_hour).abs() < 1e-12);
    assert!((catalog.memory_usd_per_hour(64 * GIB) - 64.0 * pricing.usd_per_gib_hour).abs() < 1e-9);
    assert_eq!(catalog.compute_usd_per_hour(0), 0.0);

    let t4 = match catalog.accelerator("T4") {
        Some(a) => a,
        None => panic!("T4 missing"),
    };
    assert_eq!(
        catalog.device_usd_per_hour("Tesla T4"),
        Some(t4.usd_per_hour())
    );
    assert!((t4.usd_per_hour_for_milli(500) - t4.usd_per_hour() / 2.0).abs() < 1e-12);
    assert!((t4.usd_per_hour_for_milli(2_000) - 2.0 * t4.usd_per_hour()).abs() < 1e-12);
    assert_eq!(catalog.device_usd_per_hour("no such gpu"), None);
}

#[test]
fn malformed_yaml_names_the_field() {
    // A missing required field.
    let yaml = SMALL.replace(
        "    price: {usd_per_hour: 3.0, source: \"price list B\"}\n",
        "",
    );
    let err = load_err(&yaml);
    assert!(err.contains("price"), "{err}");

    // A field of the wrong type.
    let err = load_err(&SMALL.replace("memory_gib: 80", "memory_gib: lots"));
    assert!(err.contains("memory_gib"), "{err}");

    // An unknown field (a typo).
    let err = load_err(&SMALL.replace("memory_gib: 80", "memory_gb: 80"));
    assert!(err.contains("memory_gb"), "{err}");

    // An unknown enum value.
    let err = load_err(&SMALL.replace("kind: nvlink", "kind: infiniband"));
    assert!(err.contains("infiniband"), "{err}");

    // Not YAML of the right shape at all.
    let err = load_err("just a string");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn invalid_values_name_the_entry_and_field() {
    let err = load_err(&SMALL.replace("dense_tflops: 300", "dense_tflops: -3"));
    assert!(
        err.contains("accelerators[1] (gpu-b).throughput.dense_tflops"),
        "{err}"
    );

    let err = load_err(&SMALL.replace("source: \"price list A\"", "source: \"  \""));
    assert!(
        err.contains("accelerators[0] (gpu-a).price.source"),
        "{err}"
    );

    let err = load_err(&SMALL.replace("memory_gib: 16", "memory_gib: 0"));
    assert!(err.contains("accelerators[0] (gpu-a).memory_gib"), "{err}");

    let err = load_err(&SMALL.replace("usd_per_hour: 1.0", "usd_per_hour: .nan"));
    assert!(
        err.contains("accelerators[0] (gpu-a).price.usd_per_hour"),
        "{err}"
    );

    let err = load_err(&SMALL.replace("name: gpu-b", "name: GPU B"));
    assert!(err.contains("accelerators[1] (GPU B).name"), "{err}");

    let err = load_err(&SMALL.replace("usd_per_gib_hour: 0.004", "usd_per_gib_hour: 0"));
    assert!(err.contains("cpu_pricing.usd_per_gib_hour"), "{err}");

    let err = load_err(&SMALL.replace("aliases: [\"Acme A\"]", "patterns: [\"*\"]"));
    assert!(err.contains("accelerators[0] (gpu-a).patterns[0]"), "{err}");

    let err = load_err(&SMALL.replace("version: 1", "version: 2"));
    assert!(err.contains("version"), "{err}");
}

#[test]
fn every_problem_is_reported() {
    let yaml = SMALL
        .replace("dense_tflops: 300", "dense_tflops: 0")
        .replace("source: \"datasheet A\"", "source: \"\"");
    let err = load_err(&yaml);
    assert!(err.contains("(gpu-b).throughput.dense_tflops"), "{err}");
    assert!(err.contains("(gpu-a).throughput.source"), "{err}");
}

#[test]
fn duplicates_are_rejected() {
    // The same canonical name twice.
    let err = load_err(&SMALL.replace("name: gpu-b", "name: gpu-a"));
    assert!(
        err.contains("accelerators[1] (gpu-a).name: duplicate"),
        "{err}"
    );

    // One alias (after normalization) claimed by two entries.
    let err = load_err(&SMALL.replace("aliases: [\"Acme B\"]", "aliases: [\"ACME-A\"]"));
    assert!(
        err.contains("accelerators[1] (gpu-b).aliases[0]: `ACME-A` is already a name of accelerators[0] (gpu-a)"),
        "{err}"
    );

    // An alias equal to another entry's canonical name.
    let err = load_err(&SMALL.replace("aliases: [\"Acme B\"]", "aliases: [\"gpu-a\"]"));
    assert!(err.contains("(gpu-b).aliases[0]"), "{err}");

    // CPUs too.
    let err = load_err(&SMALL.replace(
        "{name: generic, generic: true,",
        "{name: generic, aliases: [\"ref cpu 1000\"], generic: true,",
    ));
    assert!(err.contains("cpus[1] (generic).aliases[0]"), "{err}");
}

#[test]
fn cpu_list_rules() {
    // No generic fallback.
    let err = load_err(&SMALL.replace("generic: true", "generic: false, aliases: [x1]"));
    assert!(err.contains("generic: true"), "{err}");

    // Two generic fallbacks.
    let err = load_err(&SMALL.replace(
        "  - {name: ref-cpu, aliases: [\"Ref CPU 1000\"], ucu_per_core: 1.0,",
        "  - {name: ref-cpu, generic: true, aliases: [\"Ref CPU 1000\"], ucu_per_core: 1.0,",
    ));
    assert!(err.contains("found 2"), "{err}");

    // The reference CPU must exist and be worth exactly 1 UCU.
    let err = load_err(&SMALL.replace("{cpu: ref-cpu,", "{cpu: nope,"));
    assert!(err.contains("ucu_reference.cpu"), "{err}");
    let err = load_err(&SMALL.replace(
        "aliases: [\"Ref CPU 1000\"], ucu_per_core: 1.0",
        "aliases: [\"Ref CPU 1000\"], ucu_per_core: 1.5",
    ));
    assert!(err.contains("must have ucu_per_core 1.0"), "{err}");

    // A non-generic CPU nothing can match.
    let err = load_err(&SMALL.replace(
        "  - {name: generic,",
        "  - {name: lonely, ucu_per_core: 2.0, source: \"x\"}\n  - {name: generic,",
    ));
    assert!(err.contains("cpus[1] (lonely)"), "{err}");
}

#[test]
fn loads_from_a_path_or_falls_back_to_builtin() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("hardware.yaml");
    if let Err(e) = std::fs::write(&path, SMALL) {
        panic!("{e}");
    }
    let from_file = match Catalog::load(Some(&path)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(from_file.accelerators().len(), 2);

    let default = match Catalog::load(None) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(default.accelerators().len(), builtin().accelerators().len());

    let missing = dir.path().join("missing.yaml");
    match Catalog::from_path(&missing) {
        Err(Error::Catalog(message)) => assert!(message.contains("missing.yaml"), "{message}"),
        other => panic!("expected a read error, got {other:?}"),
    }

    if let Err(e) = std::fs::write(&path, SMALL.replace("memory_gib: 80", "memory_gib: -1")) {
        panic!("{e}");
    }
    match Catalog::from_path(&path) {
        Err(Error::Catalog(message)) => {
            assert!(message.contains("hardware.yaml"), "{message}");
            assert!(message.contains("memory_gib"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
