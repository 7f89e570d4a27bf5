//! How discovered hardware names are compared with catalog entries.
//!
//! Agents see names like `Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz` or
//! `NVIDIA A100-SXM4-80GB`; traces use codes like `V100M32`. Both sides are normalized the same way
//! and then compared exactly (aliases) or by a small glob language (patterns).

use std::collections::HashMap;

/// Lowercases `name`, drops the marks `(r)`, `(tm)` and `(c)`, turns every other character that
/// is not an ASCII letter or digit into a space and collapses runs of spaces:
/// `NVIDIA A100-SXM4-80GB` becomes `nvidia a100 sxm4 80gb`.
pub(crate) fn normalize(name: &str) -> String {
    normalize_with(name, false)
}

/// Like [`normalize`], but keeps the glob wildcards `*` and `?`.
pub(crate) fn normalize_pattern(pattern: &str) -> String {
    normalize_with(pattern, true)
}

fn normalize_with(text: &str, keep_wildcards: bool) -> String {
    let lower = text
        .to_lowercase()
        .replace("(r)", " ")
        .replace("(tm)", " ")
        .replace("(c)", " ");
    let mut out = String::with_capacity(lower.len());
    let mut gap = false;
    for ch in lower.chars() {
        let kept = ch.is_ascii_alphanumeric() || (keep_wildcards && (ch == '*' || ch == '?'));
        if kept {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(ch);
        } else {
            gap = true;
        }
    }
    out
}

/// Whether `text` matches `pattern` as a whole; `*` matches any run of characters (also none),
/// `?` exactly one. Both sides are expected to be normalized (ASCII only).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was seen, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // Let the last `*` absorb one more character and retry from there.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// How specific a normalized pattern is: the number of characters it matches literally.
fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*' && c != '?').count()
}

/// An index from normalized names to entry positions, built once when a catalog loads.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex {
    exact: HashMap<String, usize>,
    /// `(normalized pattern, specificity, entry)`, in catalog order.
    patterns: Vec<(String, usize, usize)>,
}

impl NameIndex {
    /// Registers `name` (already normalized) as an exact name of `entry`. Returns the entry that
    /// already owns the name when it belongs to a different one.
    pub(crate) fn insert_exact(&mut self, name: String, entry: usize) -> Option<usize> {
        match self.exact.get(&name) {
            Some(&owner) if owner != entry => Some(owner),
            Some(_) => None,
            None => {
                self.exact.insert(name, entry);
                None
            }
        }
    }

    /// Registers a normalized glob pattern for `entry`.
    pub(crate) fn insert_pattern(&mut self, pattern: String, entry: usize) {
        let spec = specificity(&pattern);
        self.patterns.push((pattern, spec, entry));
    }

    /// The entry `name` refers to: an exact name first, else the most specific matching pattern
    /// (ties go to the pattern registered first).
    pub(crate) fn lookup(&self, name: &str) -> Option<usize> {
        let name = normalize(name);
        if name.is_empty() {
            return None;
        }
        if let Some(&entry) = self.exact.get(&name) {
            return Some(entry);
        }
        let mut best: Option<(usize, usize)> = None; // (specificity, entry)
        for (pattern, spec, entry) in &self.patterns {
            if best.is_none_or(|(best_spec, _)| *spec > best_spec) && glob_match(pattern, &name) {
                best = Some((*spec, *entry));
            }
        }
        best.map(|(_, entry)| entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_vendor_strings() {
        assert_eq!(normalize("NVIDIA A100-SXM4-80GB"), "nvidia a100 sxm4 80gb");
        assert_eq!(
            normalize("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"),
            "intel xeon platinum 8375c cpu 2 90ghz"
        );
        assert_eq!(normalize("  Tesla   T4 "), "tesla t4");
        assert_eq!(normalize("--"), "");
        assert_eq!(normalize_pattern("*EPYC 7??3*"), "*epyc 7??3*");
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("*epyc 7??3*", "amd epyc 7763 64 core processor"));
        assert!(glob_match("tesla v100* 16gb*", "tesla v100 sxm2 16gb"));
        assert!(glob_match("tesla v100* 16gb*", "tesla v100 sxm2 16gb ls"));
        assert!(!glob_match("tesla v100* 16gb*", "tesla v100 sxm2 32gb"));
        assert!(glob_match("a10", "a10"));
        assert!(!glob_match("a10", "a100"));
        assert!(!glob_match("a10?", "a10"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn exact_beats_pattern_and_specific_beats_broad() {
        let mut index = NameIndex::default();
        index.insert_pattern(normalize_pattern("*epyc 7??3*"), 0);
        index.insert_pattern(normalize_pattern("*epyc 7r13*"), 1);
        index.insert_exact(normalize("AMD EPYC 7763"), 2);
        assert_eq!(index.lookup("AMD EPYC 7R13 Processor"), Some(1));
        assert_eq!(index.lookup("AMD EPYC 7713 64-Core Processor"), Some(0));
        assert_eq!(index.lookup("amd-epyc-7763"), Some(2));
        assert_eq!(index.lookup("AMD EPYC 9654"), None);
        assert_eq!(index.lookup(""), None);
    }

    #[test]
    fn exact_names_report_their_owner() {
        let mut index = NameIndex::default();
        assert_eq!(index.insert_exact("t4".into(), 0), None);
        assert_eq!(index.insert_exact("t4".into(), 0), None);
        assert_eq!(index.insert_exact("t4".into(), 3), Some(0));
    }
}
