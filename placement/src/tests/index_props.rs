//! The index against brute force: under random sequences of node and allocation changes the
//! incremental index equals one rebuilt from scratch, and placing through it finds what a
//! scan of every node finds.

use proptest::prelude::*;
use uni_core::model::{Allocation, DeviceBinding, Interconnect};
use uni_core::units::GIB;

use super::fixtures::*;
use crate::node_state::NodeState;
use crate::policy::Policy;
use crate::request::ReplicaRequest;
use crate::snapshot::Snapshot;
use crate::typical::TypicalShape;

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        node: u8,
        kind: u8,
        compute: u8,
        flags: u8,
    },
    Remove {
        node: u8,
    },
    Place {
        kind: u8,
        size: u8,
    },
    Release {
        pick: u8,
    },
    /// An allocation written by someone else, maybe for a node not (yet) known.
    Stray {
        node: u8,
        share: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..4, any::<u8>(), 0u8..16).prop_map(|(node, kind, compute, flags)| {
            Op::Upsert {
                node,
                kind,
                compute,
                flags,
            }
        }),
        (0u8..6).prop_map(|node| Op::Remove { node }),
        (0u8..6, any::<u8>()).prop_map(|(kind, size)| Op::Place { kind, size }),
        (0u8..6, any::<u8>()).prop_map(|(kind, size)| Op::Place { kind, size }),
        any::<u8>().prop_map(|pick| Op::Release { pick }),
        (0u8..7, any::<u8>()).prop_map(|(node, share)| Op::Stray { node, share }),
    ]
}

fn node(index: u8, kind: u8, compute: u8, flags: u8) -> NodeState {
    let name = format!("n{index}");
    let compute = 4_000 + u64::from(compute) * 250;
    let mut n = match kind {
        0 => cpu_node(&name, compute, 64 * GIB),
        1 => gpu_node(&name, "nvidia-t4", 2, compute),
        2 => {
            let mut n = gpu_node(&name, "nvidia-a100-80gb", 4, compute);
            for d in &mut n.devices {
                d.island = d.index / 2 * 2;
            }
            n
        }
        _ => nvlinked(gpu_node(&name, "nvidia-a100-40gb", 8, compute)),
    };
    n.cordoned = flags & 1 != 0;
    n.ready = flags & 2 == 0;
    n.draining = flags & 4 != 0 && flags & 8 != 0;
    n
}

fn request(kind: u8, size: u8) -> ReplicaRequest {
    let size = u32::from(size);
    let mut req = match kind {
        0 => cpu(500 + u64::from(size) * 100),
        1 => fraction(1 + size * 4 % 1000),
        2 => {
            let mut r = fraction(0);
            if let Some(crate::request::GpuDemand::Fraction {
                milli,
                memory_bytes,
                ..
            }) = &mut r.gpu
            {
                *milli = None;
                *memory_bytes = u64::from(size % 100) * GIB;
            }
            r
        }
        3 => whole(
            1 + size % 4,
            1 + size % 4 + size % 2,
            u64::from(size % 90) * GIB,
            Interconnect::Any,
        ),
        4 => whole(1 + size % 4, 4, 0, Interconnect::NvLink),
        _ => whole(8, 8, 0, Interconnect::Any),
    };
    req.compute_milli = u64::from(size % 16) * 1000;
    req.spread = size % 3 == 0;
    req
}

fn stray(node: u8, share: u8, id: usize) -> Allocation {
    Allocation {
        id: format!("stray-{id}"),
        namespace: "ns".into(),
        workload: "stray".into(),
        node: format!("n{node}"),
        compute_milli: 500,
        memory_bytes: GIB,
        devices: vec![DeviceBinding {
            index: 0,
            uuid: "dev-0".into(),
            share_milli: u32::from(share) * 4,
            memory_bytes: 0,
        }],
        ..Allocation::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut s = Snapshot::new();
    // Counts of the hosts of two shapes these nodes can host, checked against a recount.
    s.track_capability(vec![
        TypicalShape::new(4_000, 4 * GIB, 2, 1000, 1.0),
        TypicalShape::new(8_000, 8 * GIB, 1, 600, 1.0),
    ]);
    let exhaustive = Policy::default().exhaustive();
    let bounded = Policy {
        max_candidates: Some(1),
        ..Policy::default()
    };
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Upsert {
                node: i,
                kind,
                compute,
                flags,
            } => s.upsert_node(node(i, kind, compute, flags)),
            Op::Remove { node } => {
                s.remove_node(&format!("n{node}"));
            }
            Op::Place { kind, size } => {
                let req = request(kind, size);
                let indexed = place(&s, &req, &exhaustive);
                let scanned = place_by_scan(&s, &req, &exhaustive);
                match (&indexed, &scanned) {
                    (Ok(a), Ok(b)) => {
                        prop_assert!((a.score - b.score).abs() < 1e-9, "{a:?} vs {b:?}")
                    }
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    _ => prop_assert!(false, "index {indexed:?} vs scan {scanned:?}"),
                }
                prop_assert_eq!(place(&s, &req, &bounded).is_ok(), indexed.is_ok());
                if let Ok(d) = indexed {
                    s.add_allocation(&allocation(&format!("p{step}"), &req, &d));
                }
            }
            Op::Release { pick } => {
                let mut ids: Vec<String> = s.allocations().map(|a| a.id.clone()).collect();
                ids.sort();
                if !ids.is_empty() {
                    let id = ids[usize::from(pick) % ids.len()].clone();
                    s.remove_allocation_id(&id);
                }
            }
            Op::Stray { node, share } => s.add_allocation(&stray(node, share, step)),
        }
        if let Err(e) = s.check_consistency() {
            prop_assert!(false, "after step {step}: {e}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn index_matches_brute_force(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
