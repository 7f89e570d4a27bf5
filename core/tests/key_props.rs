//! Property tests: every typed key parses back to itself, and parsing never panics.

use proptest::prelude::*;
use uni_core::store::keys::{
    AllocationKey, ElectionKey, EventKey, NodeKey, QueueKey, StatusKey, TypedKey, WorkloadKey,
};

/// Any non-empty segment without '/' or control characters, including odd Unicode.
fn segment() -> impl Strategy<Value = String> {
    "[^/\\p{Cc}]{1,40}"
}

fn round_trip<K: TypedKey + PartialEq + std::fmt::Debug>(key: K) -> Result<(), TestCaseError> {
    let text = key.format();
    prop_assert!(text.starts_with(&K::prefix()));
    prop_assert_eq!(
        K::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?,
        key
    );
    Ok(())
}

proptest! {
    #[test]
    fn keys_round_trip(a in segment(), b in segment(), c in segment(), replica in any::<u32>()) {
        round_trip(NodeKey::new(a.clone()).unwrap())?;
        round_trip(QueueKey::new(a.clone()).unwrap())?;
        round_trip(ElectionKey::new(a.clone()).unwrap())?;
        round_trip(WorkloadKey::new(a.clone(), b.clone()).unwrap())?;
        round_trip(AllocationKey::new(a.clone(), c.clone()).unwrap())?;
        round_trip(EventKey::new(b.clone(), c).unwrap())?;
        round_trip(StatusKey::new(a, b, replica).unwrap())?;
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,80}") {
        let _ = WorkloadKey::parse(&s);
        let _ = StatusKey::parse(&s);
        let _ = NodeKey::parse(&format!("/universal/v1/nodes/{s}"));
    }

    #[test]
    fn a_key_of_one_kind_never_parses_as_another(a in segment(), b in segment()) {
        let w = WorkloadKey::new(a.clone(), b).unwrap().format();
        prop_assert!(NodeKey::parse(&w).is_err());
        prop_assert!(QueueKey::parse(&w).is_err());
        let n = NodeKey::new(a).unwrap().format();
        prop_assert!(WorkloadKey::parse(&n).is_err());
    }
}
