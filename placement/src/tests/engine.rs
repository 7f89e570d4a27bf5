//! Single placements: what fits where, which shape wins, and why nothing fits.

use uni_core::model::{Interconnect, Preference, Selector, Taint};
use uni_core::units::GIB;

use super::fixtures::*;
use crate::policy::Policy;
use crate::request::{GpuDemand, ModelFilter};

#[test]
fn fractional_requests_fit_inside_one_device_only() {
    let mut node = gpu_node("g", "nvidia-t4", 2, 32_000);
    node.devices[0].used_milli = 600;
    node.devices[1].used_milli = 600;
    let mut s = snapshot([node.clone()]);
    // Usage comes from allocations, so build it with allocations.
    let busy = |device: u32, id: &str| uni_core::model::Allocation {
        id: id.into(),
        namespace: "ns".into(),
        workload: "busy".into(),
        node: "g".into(),
        devices: vec![uni_core::model::DeviceBinding {
            index: device,
            uuid: format!("dev-{device}"),
            share_milli: 600,
            memory_bytes: 0,
        }],
        ..Default::default()
    };
    s.add_allocation(&busy(0, "b0"));
    s.add_allocation(&busy(1, "b1"));
    let why = place(&s, &fraction(500), &Policy::default()).expect_err("800 free, split");
    assert_eq!(why.to_string(), "0/1 nodes: 1 insufficient accelerators");

    let d = place(&s, &fraction(400), &Policy::default()).expect("fits");
    assert_eq!(d.devices.len(), 1);
    assert_eq!(d.devices[0].share_milli, 400);
    assert_eq!(d.devices[0].uuid, format!("dev-{}", d.devices[0].index));
}

#[test]
fn fractions_prefer_devices_already_in_use() {
    let mut s = snapshot([
        gpu_node("fresh", "nvidia-t4", 2, 32_000),
        gpu_node("used", "nvidia-t4", 2, 32_000),
    ]);
    let first = commit(&mut s, &fraction(500), &Policy::default(), "a").expect("fits");
    let second = commit(&mut s, &fraction(250), &Policy::default(), "b").expect("fits");
    assert_eq!(second.node, first.node);
    assert_eq!(second.devices[0].index, first.devices[0].index);
}

#[test]
fn multi_device_requests_stay_within_an_nvlink_island() {
    let mut node = gpu_node("g", "nvidia-a100-80gb", 8, 96_000);
    for d in &mut node.devices {
        d.island = if d.index < 4 { 0 } else { 4 };
    }
    let mut s = snapshot([node]);
    let policy = Policy::default();
    let two = commit(
        &mut s,
        &whole(2, 2, 0, Interconnect::NvLink),
        &policy,
        "two",
    )
    .expect("fits");
    let islands =
        |d: &crate::select::Decision| d.devices.iter().map(|b| b.index / 4).collect::<Vec<_>>();
    assert_eq!(islands(&two).len(), 2);
    assert!(islands(&two).windows(2).all(|w| w[0] == w[1]));
    // The pair went into one island, so the other still has four linked devices.
    let four = commit(
        &mut s,
        &whole(4, 4, 0, Interconnect::NvLink),
        &policy,
        "four",
    )
    .expect("the untouched island");
    assert_eq!(islands(&four), vec![islands(&two)[0] ^ 1; 4]);
    // Two free devices left, in one island; three cannot be linked.
    let why = place(&s, &whole(3, 3, 0, Interconnect::NvLink), &policy).expect_err("no island");
    assert_eq!(why.to_string(), "0/1 nodes: 1 insufficient accelerators");
    assert!(place(&s, &whole(2, 2, 0, Interconnect::NvLink), &policy).is_ok());
}

#[test]
fn nvlink_island_reason() {
    let s = snapshot([gpu_node("g", "nvidia-a100-80gb", 4, 96_000)]);
    let why = place(
        &s,
        &whole(2, 2, 0, Interconnect::NvLink),
        &Policy::default(),
    )
    .expect_err("devices are not linked");
    assert_eq!(
        why.to_string(),
        "0/1 nodes: 1 no NVLink island large enough"
    );
    let s = snapshot([nvlinked(gpu_node("g", "nvidia-a100-80gb", 4, 96_000))]);
    assert!(place(
        &s,
        &whole(2, 2, 0, Interconnect::NvLink),
        &Policy::default()
    )
    .is_ok());
}

#[test]
fn device_model_constraints() {
    let s = snapshot([
        gpu_node("t4", "nvidia-t4", 1, 32_000),
        gpu_node("a100", "nvidia-a100-80gb", 1, 32_000),
    ]);
    let policy = Policy::default();
    let with = |allowed: &[&str], forbidden: &[&str]| {
        let mut req = whole(1, 1, 0, Interconnect::Any);
        if let Some(GpuDemand::Whole { models, .. }) = &mut req.gpu {
            *models = ModelFilter {
                allowed: allowed.iter().map(|m| m.to_string()).collect(),
                forbidden: forbidden.iter().map(|m| m.to_string()).collect(),
            };
        }
        req
    };
    assert_eq!(
        place(&s, &with(&[], &[]), &policy).expect("fits").node,
        "t4"
    );
    let a100 = with(&["NVIDIA-A100-80GB"], &[]);
    assert_eq!(place(&s, &a100, &policy).expect("fits").node, "a100");
    assert_eq!(
        place(&s, &with(&[], &["nvidia-t4"]), &policy)
            .expect("fits")
            .node,
        "a100"
    );
    // A catalog alias matches once resolved.
    let mut alias = with(&["A100-SXM4-80GB"], &[]);
    assert!(place(&s, &alias, &policy).is_err());
    alias.resolve_models(&catalog());
    assert_eq!(place(&s, &alias, &policy).expect("fits").node, "a100");
    let why = place(&s, &with(&["nvidia-h100-sxm"], &[]), &policy).expect_err("none");
    assert_eq!(
        why.to_string(),
        "0/2 nodes: 2 no matching accelerator model"
    );
}

#[test]
fn unschedulable_counts_every_node_once() {
    let mut nodes = Vec::new();
    for i in 0..80 {
        nodes.push(gpu_node(&format!("t4-{i}"), "nvidia-t4", 4, 32_000));
    }
    for i in 0..30 {
        let mut n = gpu_node(&format!("cordoned-{i}"), "nvidia-a100-80gb", 4, 32_000);
        n.cordoned = true;
        nodes.push(n);
    }
    for i in 0..10 {
        let mut n = gpu_node(&format!("down-{i}"), "nvidia-a100-80gb", 4, 32_000);
        n.ready = false;
        nodes.push(n);
    }
    let s = snapshot(nodes);
    let why = place(
        &s,
        &whole(1, 1, 40 * GIB, Interconnect::Any),
        &Policy::default(),
    )
    .expect_err("only T4s are up");
    assert_eq!(why.nodes, 120);
    assert_eq!(
        why.to_string(),
        "0/120 nodes: 80 insufficient accelerator memory, 30 cordoned, 10 not ready"
    );
}

#[test]
fn constraints_are_reported() {
    let mut tainted = cpu_node("tainted", 8000, 64 * GIB);
    tainted.taints.push(Taint {
        key: "dedicated".into(),
        value: "x".into(),
        ..Taint::default()
    });
    let mut elsewhere = cpu_node("elsewhere", 8000, 64 * GIB);
    elsewhere.labels.insert("zone".into(), "b".into());
    let mut small = cpu_node("small", 1000, 64 * GIB);
    small.labels.insert("zone".into(), "a".into());
    let mut gpu = gpu_node("gpu", "nvidia-t4", 1, 8000);
    gpu.labels.insert("zone".into(), "a".into());
    let s = snapshot([tainted, elsewhere, small, gpu]);
    let mut req = cpu(2000);
    req.selector = Some(Selector::parse("zone=a").expect("selector"));
    req.forbidden_classes = vec!["nvidia-t4".into()];
    let why = place(&s, &req, &Policy::default()).expect_err("nothing fits");
    assert_eq!(
        why.to_string(),
        "0/4 nodes: 1 class not allowed, 1 insufficient compute, 1 node selector mismatch, 1 untolerated taint"
    );
    let empty = crate::snapshot::Snapshot::new();
    assert_eq!(
        place(&empty, &req, &Policy::default())
            .expect_err("no nodes")
            .to_string(),
        "0/0 nodes"
    );
}

#[test]
fn cheapest_shape_wins_unless_speed_is_preferred() {
    // One 80 GB device, or two 40 GB devices: the catalog prices the pair higher.
    let s = snapshot([
        gpu_node("pair", "nvidia-a100-40gb", 2, 32_000),
        gpu_node("single", "nvidia-a100-80gb", 1, 32_000),
    ]);
    let mut req = whole(1, 2, 80 * GIB, Interconnect::Any);
    let cheap = place(&s, &req, &Policy::default()).expect("fits");
    assert_eq!(cheap.node, "single");
    assert_eq!(cheap.devices.len(), 1);
    let catalog = catalog();
    let device = catalog
        .device_usd_per_hour("nvidia-a100-80gb")
        .expect("price");
    let host = catalog.compute_usd_per_hour(req.compute_milli)
        + catalog.memory_usd_per_hour(req.memory_bytes);
    assert!((cheap.usd_per_hour - (device + host)).abs() < 1e-9);

    req.prefer = Preference::Speed;
    let fast = place(&s, &req, &Policy::default()).expect("fits");
    assert_eq!(fast.node, "pair");
    assert_eq!(fast.devices.len(), 2);
    assert!(fast.usd_per_hour > cheap.usd_per_hour);
}

#[test]
fn price_decides_only_requests_in_capability_terms() {
    // Two like nodes, one priced twice as high and already half used. "80 GB of device
    // memory" goes to the cheap one; a bare "one device" leaves the device to packing, which
    // fills the half-used node, as it does when prices are equal.
    let priced = |factor: f64| {
        let cheap = gpu_node("cheap", "nvidia-a100-80gb", 2, 32_000);
        let mut dear = gpu_node("dear", "nvidia-a100-80gb", 2, 32_000);
        for d in &mut dear.devices {
            d.price_per_hour *= factor;
        }
        let mut s = snapshot([cheap, dear]);
        let one = whole(1, 1, 0, Interconnect::Any);
        let d = place(&s, &one, &Policy::default()).expect("fits");
        let mut taken = allocation("running", &one, &d);
        taken.node = "dear".into();
        s.add_allocation(&taken);
        s
    };
    let capability = whole(1, 1, 80 * GIB, Interconnect::Any);
    let d = place(&priced(2.0), &capability, &Policy::default()).expect("fits");
    assert_eq!(d.node, "cheap");
    let bare = whole(1, 1, 0, Interconnect::Any);
    for factor in [1.0, 2.0] {
        let d = place(&priced(factor), &bare, &Policy::default()).expect("fits");
        assert_eq!(d.node, "dear", "prices x{factor}");
    }
}

#[test]
fn cheapest_shape_wins_within_one_node() {
    let mut mixed = gpu_node("mixed", "nvidia-a100-40gb", 2, 32_000);
    let big = gpu_node("x", "nvidia-a100-80gb", 1, 1).devices[0].clone();
    mixed.devices.push(crate::node_state::DeviceState {
        index: 2,
        uuid: "dev-2".into(),
        island: 2,
        ..big
    });
    let s = snapshot([mixed]);
    let mut req = whole(1, 2, 80 * GIB, Interconnect::Any);
    let d = place(&s, &req, &Policy::default()).expect("fits");
    assert_eq!(
        d.devices.iter().map(|b| b.index).collect::<Vec<_>>(),
        vec![2]
    );
    req.prefer = Preference::Speed;
    let d = place(&s, &req, &Policy::default()).expect("fits");
    assert_eq!(
        d.devices.iter().map(|b| b.index).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn replicas_spread_across_nodes() {
    let nodes = (0..3).map(|i| gpu_node(&format!("n{i}"), "nvidia-t4", 4, 64_000));
    let mut s = snapshot(nodes);
    let mut req = fraction(250);
    req.spread = true;
    let mut used = std::collections::BTreeSet::new();
    for i in 0..3 {
        used.insert(
            commit(&mut s, &req, &Policy::default(), &format!("r{i}"))
                .expect("fits")
                .node,
        );
    }
    assert_eq!(used.len(), 3, "{used:?}");

    // Without spreading, the same replicas pack onto one device.
    let mut s = snapshot((0..3).map(|i| gpu_node(&format!("n{i}"), "nvidia-t4", 4, 64_000)));
    req.spread = false;
    let mut used = std::collections::BTreeSet::new();
    for i in 0..3 {
        let d = commit(&mut s, &req, &Policy::default(), &format!("r{i}")).expect("fits");
        used.insert((d.node, d.devices[0].index));
    }
    assert_eq!(used.len(), 1, "{used:?}");
}

#[test]
fn bounded_scoring_still_finds_room() {
    let mut nodes: Vec<_> = (0..200)
        .map(|i| gpu_node(&format!("n{i:03}"), "nvidia-t4", 1, 8000))
        .collect();
    // Only the last node has room for four devices.
    nodes.push(gpu_node("big", "nvidia-t4", 4, 64_000));
    let s = snapshot(nodes);
    let policy = Policy {
        max_candidates: Some(2),
        ..Policy::default()
    };
    let d = place(&s, &whole(4, 4, 0, Interconnect::Any), &policy).expect("fits");
    assert_eq!(d.node, "big");
    let d = place(&s, &whole(1, 1, 0, Interconnect::Any), &policy).expect("fits");
    assert_ne!(
        d.node, "big",
        "a single device fits tighter on a one-device node"
    );
}

#[test]
fn cpu_work_goes_to_cpu_nodes_while_one_fits() {
    // The GPU node is the tighter fit (packing would pick it) and has CPU to spare for its
    // devices; still the CPU node takes CPU work until it is full.
    let s = snapshot([
        gpu_node("gpu", "nvidia-t4", 1, 64_000),
        cpu_node("cpu", 128_000, 512 * GIB),
    ]);
    let job = cpu(16_000);
    let blind = Policy {
        cpu_nodes_first: false,
        ..Policy::best_fit()
    };
    assert_eq!(place(&s, &job, &blind).expect("fits").node, "gpu");
    assert_eq!(
        place(&s, &job, &Policy::default()).expect("fits").node,
        "cpu"
    );
    let mut s = s;
    for i in 0..8 {
        let d = commit(&mut s, &job, &Policy::default(), &format!("cpu-{i}")).expect("fits");
        assert_eq!(d.node, "cpu");
    }
    // Full: the next goes to the GPU node.
    assert_eq!(
        place(&s, &job, &Policy::default()).expect("fits").node,
        "gpu"
    );
}
