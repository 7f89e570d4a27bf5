//! Which shapes of a mix placement protects: the largest, whose last hosts it keeps able to
//! host them (`score::scarcity` prices losing one).

use crate::typical::{largest_first, TypicalShape};

/// Protected shapes a mix may have: one bit each in a node's capability mask.
pub const MAX_PROTECTED: usize = 64;

/// Whether any node able to host `a` can host `b`: `a` asks for at least as much in every
/// dimension, and allows only models `b` allows.
fn covers(a: &TypicalShape, b: &TypicalShape) -> bool {
    let models = b.models.allowed.is_empty()
        || (!a.models.allowed.is_empty()
            && a.models
                .allowed
                .iter()
                .all(|m| b.models.allowed.contains(m)));
    let forbidden = b
        .models
        .forbidden
        .iter()
        .all(|m| a.models.forbidden.contains(m));
    a.compute_milli >= b.compute_milli
        && a.memory_bytes >= b.memory_bytes
        && a.gpus >= b.gpus
        && a.gpu_milli >= b.gpu_milli
        && models
        && forbidden
}

/// The shapes of `mix` worth protecting: those using accelerators that no other shape covers
/// (the largest of the mix; whatever hosts them hosts the rest), at most `MAX_PROTECTED`,
/// largest accelerator demand first.
pub fn protected(mix: &[TypicalShape]) -> Vec<TypicalShape> {
    let gpu: Vec<&TypicalShape> = mix.iter().filter(|s| s.uses_accelerators()).collect();
    let mut out: Vec<TypicalShape> = Vec::new();
    for (i, b) in gpu.iter().enumerate() {
        let covered = gpu.iter().enumerate().any(|(j, a)| {
            // Of two equal shapes, the first is kept.
            j != i && covers(a, b) && (!covers(b, a) || j < i)
        });
        if !covered {
            out.push((*b).clone());
        }
    }
    out.sort_by(largest_first);
    out.truncate(MAX_PROTECTED);
    out
}

#[cfg(test)]
mod tests {
    use uni_core::units::GIB;

    use super::*;
    use crate::request::ModelFilter;

    #[test]
    fn largest_shapes_are_protected() {
        let mut v100 = TypicalShape::new(8_000, 0, 1, 1000, 1.0);
        v100.models = ModelFilter {
            allowed: vec!["V100".into()],
            forbidden: vec![],
        };
        let mix = [
            TypicalShape::new(4_000, GIB, 1, 500, 5.0),
            TypicalShape::new(120_000, 700 * GIB, 8, 1000, 0.01),
            TypicalShape::new(88_000, 320 * GIB, 8, 1000, 0.1),
            TypicalShape::new(2_000, GIB, 0, 0, 3.0),
            v100.clone(),
        ];
        let p = protected(&mix);
        // The 88-CPU and half-device shapes are covered by the 120-CPU one; the V100-only shape
        // is not (a node able to host the larger one may have other models).
        assert_eq!(p, vec![mix[1].clone(), v100]);
    }
}
