//! Quantities as people write them ("500m", "64Gi"), checked by the API server against the
//! Kubernetes quantity syntax (without a sign: requests are never negative). Universal parses
//! and range-checks them again, and a value it refuses is reported in the resource's status.

use schemars::{json_schema, Schema, SchemaGenerator};

/// Kubernetes quantity syntax, unsigned: a decimal number with an optional binary suffix
/// (Ki..Ei), decimal suffix (n, u, m, k, M..E) or exponent.
pub const PATTERN: &str = r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Schema of a required quantity string.
pub fn schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": PATTERN,
        "minLength": 1,
    })
}

/// Schema of an optional quantity string (`Option<String>`).
pub fn optional_schema(g: &mut SchemaGenerator) -> Schema {
    let mut s = schema(g);
    s.insert("nullable".into(), true.into());
    s
}
