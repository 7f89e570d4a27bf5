//! Finds the line of a field in a YAML document from its dotted path
//! (`spec.replicas.min`, `spec.template.env[1].name`), so errors point into the file.

/// 1-based line of `path` in `doc`, or of its longest prefix present; 1 when nothing matches.
pub fn line_of(doc: &str, path: &str) -> usize {
    let want: Vec<String> = path
        .split('.')
        .map(|s| s.split('[').next().unwrap_or(s).to_string())
        .collect();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best = (0, 1);
    for (i, raw) in doc.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        // A list item's keys sit one level deeper than its dash.
        let mut body = trimmed;
        while let Some(rest) = body.strip_prefix("- ") {
            indent += 2;
            body = rest.trim_start();
        }
        let Some(key) = body
            .split(':')
            .next()
            .filter(|k| body.contains(':') && !k.contains(' '))
        else {
            continue;
        };
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim_matches('"').to_string()));
        let matched = stack
            .iter()
            .zip(&want)
            .take_while(|((_, k), w)| k == *w)
            .count();
        if matched == stack.len() && matched > best.0 {
            best = (matched, i + 1);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: universal/v1
kind: InferenceService
metadata:
  name: web
spec:
  template:
    command: [python3]
    env:
      - name: A
        value: b
    resources:
      memory: 12Qi
  replicas:
    min: 3
";

    #[test]
    fn finds_nested_fields_and_falls_back_to_the_deepest_prefix() {
        assert_eq!(line_of(DOC, "metadata.name"), 4);
        assert_eq!(line_of(DOC, "spec.replicas.min"), 14);
        assert_eq!(line_of(DOC, "spec.template.resources.memory"), 12);
        assert_eq!(line_of(DOC, "spec.template.env[0].value"), 10);
        // Not written at all: the nearest enclosing field.
        assert_eq!(line_of(DOC, "spec.replicas.max"), 13);
        assert_eq!(line_of(DOC, "nothing.here"), 1);
    }
}
