//! Properties of quantity parsing and formatting.

use proptest::prelude::*;
use uni_core::quantity::{format_bytes, format_milli, parse_bytes, parse_milli};

proptest! {
    #[test]
    fn milli_round_trips(x in any::<u64>()) {
        prop_assert_eq!(parse_milli(&format_milli(x)), Ok(x));
    }

    #[test]
    fn bytes_round_trip(x in any::<u64>()) {
        prop_assert_eq!(parse_bytes(&format_bytes(x)), Ok(x));
    }

    #[test]
    fn round_numbers_round_trip(n in 0u64..1_000_000, shift in 0u32..40) {
        let bytes = n << shift;
        prop_assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        prop_assert_eq!(parse_milli(&format_milli(n * 1000)), Ok(n * 1000));
    }

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = parse_milli(&s);
        let _ = parse_bytes(&s);
    }

    #[test]
    fn parse_never_panics_on_quantity_like_input(
        s in "[+-]?[0-9]{0,45}(\\.[0-9]{0,45})?([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,6})?"
    ) {
        let _ = parse_milli(&s);
        let _ = parse_bytes(&s);
    }

    #[test]
    fn formatting_is_canonical(s in "[0-9]{1,12}(\\.[0-9]{1,4})?(m|k|Ki|Mi|Gi)?") {
        if let Ok(v) = parse_bytes(&s) {
            let canonical = format_bytes(v);
            prop_assert_eq!(format_bytes(parse_bytes(&canonical).unwrap_or(u64::MAX)), canonical);
        }
        if let Ok(v) = parse_milli(&s) {
            let canonical = format_milli(v);
            prop_assert_eq!(format_milli(parse_milli(&canonical).unwrap_or(u64::MAX)), canonical);
        }
    }

    /// Decimals convert exactly, rounding any remainder up to the next thousandth.
    #[test]
    fn decimals_round_up_to_milli(int in 0u64..1_000_000_000, frac in "[0-9]{1,8}") {
        let scale = 10u64.pow(u32::try_from(frac.len()).unwrap_or(8));
        let frac_value: u64 = frac.parse().unwrap_or(0);
        let want = int * 1000 + (frac_value * 1000).div_ceil(scale);
        prop_assert_eq!(parse_milli(&format!("{int}.{frac}")), Ok(want));
    }

    #[test]
    fn suffixes_scale(n in 0u64..1_000_000) {
        prop_assert_eq!(parse_milli(&format!("{n}m")), Ok(n));
        prop_assert_eq!(parse_bytes(&format!("{n}Ki")), Ok(n << 10));
        prop_assert_eq!(parse_bytes(&format!("{n}Gi")), Ok(n << 30));
        prop_assert_eq!(parse_bytes(&format!("{n}G")), Ok(n * 1_000_000_000));
        prop_assert_eq!(parse_bytes(&format!("{n}e3")), Ok(n * 1000));
    }

    #[test]
    fn negatives_are_rejected(n in 1u64..u64::MAX) {
        let negative = format!("-{n}");
        prop_assert!(parse_milli(&negative).is_err());
        prop_assert!(parse_bytes(&negative).is_err());
    }
}
