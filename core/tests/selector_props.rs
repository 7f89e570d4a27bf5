//! Label selectors print in a form that parses back to the same selector.

use std::collections::BTreeMap;

use proptest::prelude::*;
use uni_core::model::Selector;

fn requirement() -> impl Strategy<Value = String> {
    let key = "([a-z]{1,5}\\.)?[a-z]{1,5}/?[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9])?";
    let value = "[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9])?";
    (key, prop::collection::vec(value, 1..4), 0..6usize).prop_map(|(key, values, op)| {
        let key = key.trim_end_matches('/').to_string();
        match op {
            0 => format!("{key}={}", values[0]),
            1 => format!("{key} != {}", values[0]),
            2 => format!("{key} in ({})", values.join(", ")),
            3 => format!("{key} notin ({})", values.join(",")),
            4 => key,
            _ => format!("!{key}"),
        }
    })
}

proptest! {
    #[test]
    fn display_parses_back(reqs in prop::collection::vec(requirement(), 0..5)) {
        let text = reqs.join(",");
        let selector = Selector::parse(&text);
        prop_assert!(selector.is_ok(), "{text}: {selector:?}");
        let selector = selector.unwrap_or_default();
        prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
    }

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        if let Ok(sel) = Selector::parse(&s) {
            let _ = sel.matches(&BTreeMap::new());
        }
    }

    #[test]
    fn a_map_selects_itself(labels in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..6)) {
        prop_assert!(Selector::from_map(&labels).matches(&labels));
    }
}
