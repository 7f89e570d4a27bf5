//! Host memory from `/proc/meminfo`.

use std::path::Path;

use crate::error::{Error, Result};

pub(super) fn discover(root: &Path) -> Result<u64> {
    let text = super::read(root, "/proc/meminfo").map_err(Error::io("reading /proc/meminfo"))?;
    parse_meminfo_total(&text)
        .ok_or_else(|| Error::Discovery("/proc/meminfo has no MemTotal".into()))
}

/// `MemTotal` in bytes. Also reads a NUMA node's `meminfo` (`Node 0 MemTotal: ... kB`).
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().ends_with("MemTotal") {
            return None;
        }
        let mut parts = value.split_whitespace();
        let number: u64 = parts.next()?.parse().ok()?;
        let unit = match parts.next() {
            Some("kB") | Some("KB") => 1024,
            None => 1,
            Some(_) => return None,
        };
        number.checked_mul(unit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_total_in_bytes() {
        let text = "MemTotal:       24563024 kB\nMemFree:        19000000 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(24_563_024 * 1024));
        assert_eq!(
            parse_meminfo_total("Node 1 MemTotal:  1024 kB\n"),
            Some(1024 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
    }
}
