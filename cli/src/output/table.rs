//! Tables aligned as kubectl prints them: upper-case headers, columns padded to their widest
//! cell and separated by three spaces, no trailing blanks.

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Self {
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(self.headers.clone(), &mut out);
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect(), &mut out);
        }
        out
    }
}

/// kubectl's age format: 45s, 12m, 3h, 5d.
pub fn age(created_ms: i64, now_ms: i64) -> String {
    if created_ms <= 0 {
        return "<unknown>".into();
    }
    let s = ((now_ms - created_ms).max(0) / 1000) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_widest_cell() {
        let mut t = Table::new(vec!["NAME", "STATUS"]);
        t.row(vec!["a-long-name".into(), "Ready".into()]);
        t.row(vec!["b".into(), "".into()]);
        assert_eq!(t.render(), "NAME          STATUS\na-long-name   Ready\nb\n");
    }

    #[test]
    fn human_bytes_round_to_one_decimal() {
        use crate::output::human_bytes;
        assert_eq!(human_bytes(24_683_652 * 1024), "23.5Gi");
        assert_eq!(human_bytes(256 << 20), "256Mi");
        assert_eq!(human_bytes(512), "512");
    }

    #[test]
    fn ages() {
        assert_eq!(age(1_000, 46_000), "45s");
        assert_eq!(age(1_000, 1_000 + 600_000), "10m");
        assert_eq!(age(1_000, 1_000 + 3 * 3_600_000), "3h");
        assert_eq!(age(1_000, 1_000 + 3 * 86_400_000), "3d");
        assert_eq!(age(0, 5), "<unknown>");
    }
}
