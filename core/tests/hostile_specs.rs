//! Random and hostile specs (huge numbers, unicode and control characters, long strings, big
//! lists, deep nesting, wrong types, unknown keys) never panic decoding, validation or
//! conversion; every rejection names a field under `meta` or `spec`; what validation accepts
//! converts to the wire and back unchanged and is accepted again, and what the API accepts is
//! valid.

use proptest::prelude::*;
use uni_core::convert::workload_from_request;
use uni_core::model::Workload;
use uni_core::testing::hostile::{assert_named, base, field_errors, mutated};
use uni_core::validate::validate_workload;
use uni_proto::v1 as pb;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn hostile_specs_are_rejected_by_field_or_accepted_whole(v in mutated()) {
        // Decoding may refuse (wrong types, unknown keys); it must not panic.
        let Ok(w) = serde_json::from_value::<Workload>(v) else {
            return Ok(());
        };
        let wire = pb::Workload::from(&w);
        match validate_workload(&w) {
            Err(e) => {
                assert_named(&field_errors(e));
                // The API refuses it too, or (where the wire's zero means "unset", e.g.
                // min_devices) takes the default: what it accepts is valid.
                match workload_from_request(&wire) {
                    Ok(back) => prop_assert!(validate_workload(&back).is_ok()),
                    Err(e) => assert_named(&field_errors(e)),
                }
            }
            Ok(()) => {
                let back = workload_from_request(&wire).expect("accepted again from the wire");
                prop_assert_eq!(pb::Workload::from(&back), wire);
            }
        }
    }

    #[test]
    fn hostile_wire_strings_never_panic(name in "\\PC{0,300}", ns in "\\PC{0,80}", cmd in prop::collection::vec("\\PC{0,50}", 0..5)) {
        let mut w: Workload = serde_json::from_value(base(true)).expect("base");
        w.meta.name = name;
        w.meta.namespace = ns;
        if let uni_core::model::WorkloadSpec::Inference(s) = &mut w.spec {
            s.template.command = cmd;
        }
        match workload_from_request(&pb::Workload::from(&w)) {
            Ok(_) => {}
            Err(e) => assert_named(&field_errors(e)),
        }
    }
}
