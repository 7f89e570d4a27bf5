//! Kubernetes-style quantities: `4`, `1.5`, `500m`, `64Gi`, `1e3`, `2k`.
//!
//! A quantity is a non-negative decimal number followed by at most one suffix:
//! - none, or an exponent `e3` / `E-2`;
//! - decimal SI: `n` (1e-9), `u` (1e-6), `m` (1e-3), `k`, `M`, `G`, `T`, `P`, `E`;
//! - binary: `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei` (powers of 1024).
//!
//! Values are converted exactly into an integer unit (thousandths of a UCU for compute, bytes for
//! memory). Precision finer than that unit is **rounded up** (`0.0001` is `1m`; `0.5` bytes is
//! `1` byte), as Kubernetes does, so a request never shrinks below what was asked. Negative
//! values, garbage and values beyond `u64` are rejected with a message saying why.
//!
//! `format_*` produce the canonical form, and `parse_*(format_*(x)) == x` for every `x`.

/// A parsed quantity: `mantissa * 10^exp10 * 1024^binary_power`. `inexact` is set when nonzero
/// digits beyond `u128` precision were dropped (the true value is slightly larger).
struct Parsed {
    mantissa: u128,
    exp10: i64,
    binary_power: u32,
    inexact: bool,
}

/// Exponents beyond this cannot produce a representable nonzero `u64`; bounding them keeps the
/// arithmetic small.
const MAX_EXPONENT: i64 = 1000;

/// Compute in thousandths of a UCU: `"500m"` is 500, `"4"` is 4000.
pub fn parse_milli(s: &str) -> Result<u64, String> {
    to_scaled(&parse(s)?, 3)
}

/// Memory in bytes: `"64Gi"` is 68719476736. Fractional bytes are rounded up.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    to_scaled(&parse(s)?, 0)
}

/// Canonical compute quantity: whole UCU without suffix (`"4"`), otherwise thousandths
/// (`"1500m"`).
pub fn format_milli(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Canonical byte quantity: the largest binary suffix that divides exactly (`"64Gi"`), else the
/// largest decimal one (`"1G"`), else plain bytes.
pub fn format_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    const BINARY: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    for (suffix, shift) in BINARY {
        if bytes.trailing_zeros() >= shift {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    const DECIMAL: [(&str, u64); 6] = [
        ("E", 1_000_000_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("T", 1_000_000_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ];
    for (suffix, unit) in DECIMAL {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

fn parse(s: &str) -> Result<Parsed, String> {
    if s.is_empty() {
        return Err("empty quantity".to_string());
    }
    let body = match s.as_bytes()[0] {
        b'-' => return Err("negative quantities are not allowed".to_string()),
        b'+' => &s[1..],
        _ => s,
    };
    let number_len = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = body.split_at(number_len);
    let mut parsed = parse_number(number)?;
    let (exp10, binary_power) = parse_suffix(suffix)?;
    parsed.exp10 += exp10;
    parsed.binary_power = binary_power;
    Ok(parsed)
}

/// Digits with at most one decimal point, at least one digit.
fn parse_number(number: &str) -> Result<Parsed, String> {
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err("expected a number".to_string());
    }
    let mut mantissa: u128 = 0;
    let mut exp10: i64 = 0;
    let mut inexact = false;
    let mut in_fraction = false;
    for b in number.bytes() {
        if b == b'.' {
            if in_fraction {
                return Err("more than one decimal point".to_string());
            }
            in_fraction = true;
            continue;
        }
        let digit = u128::from(b - b'0');
        match mantissa.checked_mul(10).and_then(|m| m.checked_add(digit)) {
            Some(m) => {
                mantissa = m;
                if in_fraction {
                    exp10 -= 1;
                }
            }
            // Out of precision: drop the digit, keeping the magnitude right.
            None => {
                inexact |= digit != 0;
                if !in_fraction {
                    exp10 += 1;
                }
            }
        }
    }
    Ok(Parsed {
        mantissa,
        exp10,
        binary_power: 0,
        inexact,
    })
}

/// Returns (decimal exponent, binary power) of a suffix.
fn parse_suffix(suffix: &str) -> Result<(i64, u32), String> {
    let found = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => return parse_exponent(suffix).map(|e| (e, 0)),
    };
    Ok(found)
}

/// `e3`, `E-2`, `e+6`.
fn parse_exponent(suffix: &str) -> Result<i64, String> {
    let unknown = || format!("unknown suffix {suffix:?}");
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))
        .ok_or_else(unknown)?;
    let (negative, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    let magnitude = digits
        .parse::<i64>()
        .ok()
        .filter(|e| *e <= MAX_EXPONENT)
        .ok_or_else(|| format!("exponent out of range (at most {MAX_EXPONENT})"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// `parsed * 10^scale10` as an integer, rounded up.
fn to_scaled(parsed: &Parsed, scale10: i64) -> Result<u64, String> {
    const TOO_LARGE: &str = "too large (at most 18446744073709551615 in the base unit)";
    if parsed.mantissa == 0 {
        return Ok(0);
    }
    let mut n = parsed
        .mantissa
        .checked_mul(1u128 << (10 * parsed.binary_power))
        .ok_or(TOO_LARGE)?;
    let exp = parsed.exp10 + scale10;
    if exp >= 0 {
        for _ in 0..exp {
            n = n.checked_mul(10).ok_or(TOO_LARGE)?;
        }
        // Dropped digits only happen with 38-digit mantissas, which never fit u64 here.
        if parsed.inexact {
            n = n.checked_add(1).ok_or(TOO_LARGE)?;
        }
    } else {
        let (quotient, exact) = match 10u128.checked_pow(u32::try_from(-exp).unwrap_or(u32::MAX)) {
            Some(divisor) => (n / divisor, n.is_multiple_of(divisor)),
            // 10^39 and beyond exceed every u128 mantissa.
            None => (0, false),
        };
        n = quotient;
        if !exact || parsed.inexact {
            n += 1;
        }
    }
    u64::try_from(n).map_err(|_| TOO_LARGE.to_string())
}

/// Serde adapters that write quantities in canonical string form and read strings or plain
/// numbers (a YAML `compute: 4` is 4 UCU, `memory: 1024` is 1024 bytes).
macro_rules! quantity_serde {
    ($name:ident, $opt_name:ident, $parse:ident, $format:ident, $unit:expr, $what:expr) => {
        #[doc = concat!("Serde adapter for a `u64` ", $what, " quantity.")]
        pub mod $name {
            use serde::{de, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&super::$format(*v))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
                d.deserialize_any(Visitor)
            }

            pub(super) struct Visitor;

            impl de::Visitor<'_> for Visitor {
                type Value = u64;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "a {} quantity such as {:?}", $what, $unit)
                }

                fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                    super::$parse(v).map_err(|e| E::custom(format!("invalid quantity {v:?}: {e}")))
                }

                fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                    self.visit_str(&v.to_string())
                }

                fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                    self.visit_str(&v.to_string())
                }

                fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
                    self.visit_str(&v.to_string())
                }
            }
        }

        #[doc = concat!("Serde adapter for an optional ", $what, " quantity (`None` = unset).")]
        pub mod $opt_name {
            use serde::{de, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
                match v {
                    Some(v) => s.serialize_some(&super::$format(*v)),
                    None => s.serialize_none(),
                }
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
                d.deserialize_option(OptVisitor)
            }

            struct OptVisitor;

            impl<'de> de::Visitor<'de> for OptVisitor {
                type Value = Option<u64>;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "a {} quantity such as {:?}, or null", $what, $unit)
                }

                fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
                    Ok(None)
                }

                fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
                    Ok(None)
                }

                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
                    d.deserialize_any(super::$name::Visitor).map(Some)
                }
            }
        }
    };
}

quantity_serde!(
    as_milli,
    as_opt_milli,
    parse_milli,
    format_milli,
    "500m",
    "compute"
);
quantity_serde!(
    as_bytes,
    as_opt_bytes,
    parse_bytes,
    format_bytes,
    "64Gi",
    "byte"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compute() {
        let cases = [
            ("0", 0),
            ("4", 4000),
            ("+4", 4000),
            ("1.5", 1500),
            (".5", 500),
            ("5.", 5000),
            ("500m", 500),
            ("0.0001", 1), // rounded up to 1m
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("15e-1", 1500),
            ("2k", 2_000_000),
            ("1Ki", 1_024_000),
            ("250000u", 250),
            ("1n", 1),
            ("007", 7000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_milli(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn parses_bytes() {
        let cases = [
            ("64Gi", 64 << 30),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("15Ei", 15 << 60),
            ("1k", 1000),
            ("0.5", 1), // fractional bytes round up
            ("0.1Ki", 103),
            ("1500m", 2),
            ("18446744073709551615", u64::MAX),
        ];
        for (s, want) in cases {
            assert_eq!(parse_bytes(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects_garbage_with_reasons() {
        let cases = [
            ("", "empty"),
            ("-1", "negative"),
            ("12Qi", "unknown suffix \"Qi\""),
            ("1.2.3", "more than one decimal point"),
            ("abc", "expected a number"),
            ("m", "expected a number"),
            ("1 Gi", "unknown suffix"),
            ("1e", "unknown suffix"),
            ("1e99999", "exponent out of range"),
            ("16Ei", "too large"),
            ("18446744073709551616", "too large"),
            ("1K", "unknown suffix"),
        ];
        for (s, want) in cases {
            let err = parse_bytes(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
        assert!(parse_milli("18446744073709552").is_err());
    }

    #[test]
    fn tiny_exponents_round_up_and_huge_mantissas_do_not_panic() {
        assert_eq!(parse_bytes("1e-1000"), Ok(1));
        assert_eq!(parse_bytes("0e1000"), Ok(0));
        let long = format!("0.{}1", "0".repeat(60));
        assert_eq!(parse_bytes(&long), Ok(1));
        let digits = "9".repeat(60);
        assert!(parse_bytes(&digits).is_err());
        assert_eq!(parse_bytes(&format!("{digits}e-70")), Ok(1));
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_milli(4000), "4");
        assert_eq!(format_milli(1500), "1500m");
        assert_eq!(format_milli(0), "0");
        assert_eq!(format_bytes(64 << 30), "64Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(1_000_000_000), "1G");
        assert_eq!(format_bytes(1000), "1k");
        assert_eq!(format_bytes(1001), "1001");
        assert_eq!(format_bytes(0), "0");
    }
}
