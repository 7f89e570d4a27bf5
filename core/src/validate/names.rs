//! Name rules shared with Kubernetes, so names move between the two unchanged.

/// Longest DNS-1123 label (names, namespaces, label names).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain (node names, label key prefixes).
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// Lowercase alphanumerics and '-', starting and ending with an alphanumeric, at most 63
/// characters: object names and namespaces.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(format!("must be at most {MAX_LABEL_LEN} characters"));
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return Err(format!(
            "{s:?} must consist of lowercase letters, digits and '-', and start and end with a \
             letter or digit"
        ));
    }
    Ok(())
}

/// DNS-1123 labels joined by '.', at most 253 characters: node names (host names).
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.len() > MAX_SUBDOMAIN_LEN {
        return Err(format!("must be at most {MAX_SUBDOMAIN_LEN} characters"));
    }
    if s.split('.').any(|part| dns1123_label(part).is_err()) {
        return Err(format!(
            "{s:?} must be lowercase letters, digits, '-' and '.', each '.'-separated part \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Label key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters of
/// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("prefix of label key {key:?}: {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("label key {key:?}: name part must not be empty"));
    }
    label_name_chars(name).map_err(|e| format!("label key {key:?}: {e}"))
}

/// Label value: empty, or at most 63 alphanumerics, '-', '_' and '.', starting and ending with
/// an alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    label_name_chars(value).map_err(|e| format!("label value {value:?}: {e}"))
}

fn label_name_chars(s: &str) -> Result<(), String> {
    if s.len() > MAX_LABEL_LEN {
        return Err(format!("must be at most {MAX_LABEL_LEN} characters"));
    }
    let inner_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if !(inner_ok && ends_ok) {
        return Err(
            "must consist of letters, digits, '-', '_' and '.', and start and end with a letter \
             or digit"
                .to_string(),
        );
    }
    Ok(())
}

/// Environment variable name: letters, digits, '_', '-' and '.', not starting with a digit
/// (the Kubernetes rule).
pub fn env_var_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(format!(
            "{name:?} must consist of letters, digits, '_', '-' and '.', and not start with a \
             digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names() {
        assert!(dns1123_label("llama-70b").is_ok());
        assert!(dns1123_label("Llama").is_err());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("gpu-01.rack-3.example").is_ok());
        assert!(dns1123_subdomain("gpu..a").is_err());
        assert!(label_key("universal.dev/zone").is_ok());
        assert!(label_key("Zone_A.b").is_ok());
        assert!(label_key("/zone").is_err());
        assert!(label_key("a/").is_err());
        assert!(label_key("a/b/c").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("v1 ").is_err());
        assert!(env_var_name("HF_HOME").is_ok());
        assert!(env_var_name("1X").is_err());
        assert!(env_var_name("A=B").is_err());
    }
}
