//! Seeded draws: reproducible "random" choices, made from a hash of a seed, the workload and
//! what is being chosen (a node name, a device position), so a replay with the same seed makes
//! the same choices and nothing holds random state. Used by the `Random` baseline and by
//! seeded tie-breaking (kube-scheduler picks among equal scores at random).

use uni_core::model::WorkloadRef;

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// splitmix64's finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform 64-bit draw for choosing `key` for `workload` under `seed`.
pub fn draw(seed: u64, workload: &WorkloadRef, key: &[u8]) -> u64 {
    let mut h = fnv1a(
        0xcbf2_9ce4_8422_2325 ^ mix(seed),
        workload.namespace.as_bytes(),
    );
    h = fnv1a(h, b"/");
    h = fnv1a(h, workload.name.as_bytes());
    h = fnv1a(h, &[0xff]);
    mix(fnv1a(h, key))
}

/// A node's place in a seeded random order of all nodes (the same for every request): ties go
/// to the node ranked highest, as if the nodes had been listed in a shuffled order and the first
/// best one taken.
pub fn rank(seed: u64, node: &str) -> u64 {
    mix(fnv1a(0x84222325cbf29ce4 ^ mix(seed), node.as_bytes()))
}

/// The draw as a number in [0, 1).
pub fn unit(seed: u64, workload: &WorkloadRef, key: &[u8]) -> f64 {
    (draw(seed, workload, key) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_and_spread() {
        let w = WorkloadRef::new("ns", "pod-1");
        assert_eq!(draw(7, &w, b"node-a"), draw(7, &w, b"node-a"));
        assert_ne!(draw(7, &w, b"node-a"), draw(8, &w, b"node-a"));
        assert_ne!(draw(7, &w, b"node-a"), draw(7, &w, b"node-b"));
        assert_eq!(rank(7, "node-a"), rank(7, "node-a"));
        assert_ne!(rank(7, "node-a"), rank(8, "node-a"));
        // Roughly uniform: each of 4 buckets gets a fair share of 4000 draws.
        let mut buckets = [0u32; 4];
        for i in 0..4000u32 {
            let u = unit(1, &WorkloadRef::new("ns", &format!("p{i}")), b"n");
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 4.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (850..1150).contains(&b)),
            "{buckets:?}"
        );
    }
}
