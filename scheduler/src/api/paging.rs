//! Paged listing, from the store (a key range) or from the cache (a sorted map). A page token
//! is the last key (or name) the previous page looked at; the next page starts after it, so
//! pages stay correct while objects come and go between calls.

use std::collections::BTreeMap;
use std::ops::Bound;

use tracing::warn;
use uni_core::store::{KvStore, Pager, Revision};
use uni_core::Error as CoreError;

use super::object::{decode, Object};

/// Stored bytes after which a page is cut, whatever its count.
pub(crate) const PAGE_BYTES: usize = uni_core::store::pager::PAGE_BYTES;
use crate::error::Result;

/// Page size when the request says 0.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 500;
/// Largest page served, whatever the request asks; [`list_store`] also cuts pages by bytes.
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

pub(crate) fn page_size(requested: u32) -> usize {
    match usize::try_from(requested) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(n) => n.min(MAX_PAGE_SIZE),
        Err(_) => MAX_PAGE_SIZE,
    }
}

pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_token: String,
    /// Store revision the first read of this page saw; a watch from it misses nothing.
    pub revision: Revision,
}

/// Reads one page of the objects under `prefix` that pass `keep`: at most `size` objects
/// and about [`PAGE_BYTES`] of stored values, so a page of large objects stays far below the
/// response limit. Values that do not decode are logged and skipped, so one bad key cannot
/// break every listing.
pub(crate) async fn list_store<T: Object>(
    store: &dyn KvStore,
    prefix: &str,
    token: &str,
    size: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>> {
    if !token.is_empty() && !token.starts_with(prefix) {
        return Err(CoreError::invalid("page_token", "does not belong to this listing").into());
    }
    let after = (!token.is_empty()).then(|| token.to_string());
    let mut pager = Pager::new(prefix, size).start_after(after);
    let mut items = Vec::new();
    let mut bytes = 0;
    let mut revision = None;
    while let Some(resp) = pager.next(store).await? {
        let revision = *revision.get_or_insert(resp.revision);
        let n = resp.kvs.len();
        for (i, kv) in resp.kvs.iter().enumerate() {
            match decode::<T>(kv) {
                Ok(obj) if keep(&obj) => {
                    items.push(obj);
                    bytes += kv.value.len();
                }
                Ok(_) => {}
                Err(e) => warn!(key = %kv.key, error = %e, "list: skipping bad value"),
            }
            if items.len() == size || bytes >= PAGE_BYTES {
                let more = i + 1 < n || resp.more;
                let next_token = if more { kv.key.clone() } else { String::new() };
                return Ok(Page {
                    items,
                    next_token,
                    revision,
                });
            }
        }
    }
    Ok(Page {
        items,
        next_token: String::new(),
        revision: revision.unwrap_or_default(),
    })
}

/// One page of a sorted in-memory map (the cache), by key; the token is the last key served.
pub(crate) fn list_map<'a, V>(
    map: &'a BTreeMap<String, V>,
    token: &str,
    size: usize,
    keep: impl Fn(&V) -> bool,
) -> (Vec<&'a V>, String) {
    let start = if token.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(token.to_string())
    };
    let mut items = Vec::new();
    let mut iter = map
        .range((start, Bound::Unbounded))
        .filter(|(_, v)| keep(v));
    for (key, v) in iter.by_ref() {
        items.push(v);
        if items.len() == size {
            let next = if iter.next().is_some() {
                key.clone()
            } else {
                String::new()
            };
            return (items, next);
        }
    }
    (items, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(u32::MAX), MAX_PAGE_SIZE);
    }

    #[test]
    fn map_pages_resume_after_the_token() {
        let map: BTreeMap<String, u32> = (1..=5).map(|i| (format!("n{i}"), i)).collect();
        let (items, next) = list_map(&map, "", 2, |_| true);
        assert_eq!((items, next.as_str()), (vec![&1, &2], "n2"));
        let (items, next) = list_map(&map, &next, 2, |v| *v != 4);
        assert_eq!((items, next.as_str()), (vec![&3, &5], ""));
        let (items, next) = list_map(&map, "n3", 2, |_| true);
        assert_eq!((items, next.as_str()), (vec![&4, &5], ""));
    }
}
