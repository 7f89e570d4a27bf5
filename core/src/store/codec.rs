//! Storage encoding of domain values: JSON, so that `etcdctl get` stays readable and new
//! optional fields can be added without a migration.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Decodes the value stored at `key`; a value that does not parse is reported as corrupt.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_names_the_key() {
        let v = vec![("a".to_string(), 1u32)];
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<Vec<(String, u32)>>("k", &bytes).unwrap(), v);
        let err = decode::<Vec<(String, u32)>>("/universal/v1/nodes/x", b"{nope").unwrap_err();
        assert!(err.to_string().contains("/universal/v1/nodes/x"), "{err}");
    }
}
