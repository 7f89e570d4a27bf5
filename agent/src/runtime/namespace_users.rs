//! One host user per namespace. Replicas whose template names no user run as their
//! namespace's own uid (and a group of the same number), taken from a range on first use and
//! kept in `DATA_DIR/namespace-users.json`, so replicas of different tenants on one machine
//! cannot signal each other's processes or open each other's files, and a restarted agent
//! gives every namespace the same user again. As with Nomad's dynamic workload users, the ids
//! are this node's: other nodes number namespaces their own way.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Result;
use crate::shim::{read_json, write_json};

pub const FILE: &str = "namespace-users.json";
/// Above the ids distributions hand out (system and login users) and below 2^31.
pub const DEFAULT_RANGE: RangeInclusive<u32> = 200_000..=299_999;

pub struct NamespaceUsers {
    path: PathBuf,
    range: RangeInclusive<u32>,
    ids: Mutex<BTreeMap<String, u32>>,
}

impl NamespaceUsers {
    /// The table kept in `dir`, handing out ids from `range`.
    pub fn open(dir: &Path, range: RangeInclusive<u32>) -> Result<Self> {
        let path = dir.join(FILE);
        let ids = read_json(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            range,
            ids: Mutex::new(ids),
        })
    }

    /// The uid of `namespace`: the one it has, or the lowest free one of the range, saved
    /// before it is returned. `Err` says why none can be given.
    pub fn id(&self, namespace: &str) -> std::result::Result<u32, String> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = ids.get(namespace) {
            return Ok(*id);
        }
        let taken: std::collections::BTreeSet<u32> = ids.values().copied().collect();
        let Some(id) = self.range.clone().find(|id| !taken.contains(id)) else {
            return Err(format!(
                "every user id of the namespace range {}-{} is taken ({} namespaces on this node)",
                self.range.start(),
                self.range.end(),
                ids.len()
            ));
        };
        ids.insert(namespace.to_string(), id);
        if let Err(e) = write_json(&self.path, &*ids) {
            ids.remove(namespace);
            return Err(format!("saving the namespace's user id: {e}"));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_namespace_keeps_its_own_id_across_restarts_until_the_range_is_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let users = NamespaceUsers::open(dir.path(), 1000..=1002).unwrap();
        assert_eq!(users.id("a"), Ok(1000));
        assert_eq!(users.id("b"), Ok(1001));
        assert_eq!(users.id("a"), Ok(1000));
        // A restarted agent reads the same table.
        let again = NamespaceUsers::open(dir.path(), 1000..=1002).unwrap();
        assert_eq!(again.id("b"), Ok(1001));
        assert_eq!(again.id("c"), Ok(1002));
        let full = again.id("d").unwrap_err();
        assert!(full.contains("1000-1002 is taken"), "{full}");
        assert_eq!(again.id("c"), Ok(1002));
    }
}
