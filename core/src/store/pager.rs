//! Reading a prefix page by page, with pages sized by bytes as well as keys. etcd cuts a range
//! by count only, so a page of large values could pass any message limit: each page is sized
//! from the bytes per key of the one before, and a page refused as too large is halved.

use super::{KvStore, RangeOptions, RangeResponse};
use crate::{Error, Result};

/// Bytes a page aims at: well under every message limit on the way (etcd's KV client, the
/// agent gateway's 16 MiB).
pub const PAGE_BYTES: usize = 4 << 20;

/// A cursor over the keys under one prefix; cancel-safe (a dropped [`Pager::next`] changes
/// nothing), so it can be kept across calls that may be cancelled.
#[derive(Debug, Clone)]
pub struct Pager {
    prefix: String,
    after: Option<String>,
    keys: usize,
    max_keys: usize,
    done: bool,
}

impl Pager {
    /// Pages of at most `max_keys` keys under `prefix`.
    pub fn new(prefix: impl Into<String>, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        Self {
            prefix: prefix.into(),
            after: None,
            keys: max_keys,
            max_keys,
            done: false,
        }
    }

    /// Starts after `key` (a page token) instead of at the start of the prefix.
    pub fn start_after(mut self, key: Option<String>) -> Self {
        self.after = key;
        self
    }

    /// The last key returned so far.
    pub fn last_key(&self) -> Option<&str> {
        self.after.as_deref()
    }

    /// The next page, or `None` after the last.
    pub async fn next(&mut self, store: &dyn KvStore) -> Result<Option<RangeResponse>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let opts = RangeOptions {
                start_after: self.after.clone(),
                limit: Some(self.keys),
            };
            match store.range(&self.prefix, opts).await {
                Ok(page) => {
                    let bytes: usize = page
                        .kvs
                        .iter()
                        .map(|kv| kv.key.len() + kv.value.len())
                        .sum();
                    if !page.kvs.is_empty() {
                        let per_key = bytes.div_ceil(page.kvs.len()).max(1);
                        self.keys = (PAGE_BYTES / per_key).clamp(1, self.max_keys);
                    }
                    if let Some(last) = page.kvs.last() {
                        self.after = Some(last.key.clone());
                    }
                    self.done = !page.more || page.kvs.is_empty();
                    return Ok(Some(page));
                }
                Err(Error::TooLarge(_)) if self.keys > 1 => self.keys /= 2,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    #[tokio::test]
    async fn pages_shrink_to_the_byte_budget_and_cover_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("db"))
            .await
            .expect("open");
        for i in 0..10 {
            store
                .put(&format!("p/{i}"), vec![b'x'; PAGE_BYTES / 3], 0)
                .await
                .expect("put");
        }
        store.put("q/0", b"other".to_vec(), 0).await.expect("put");
        let mut pager = Pager::new("p/", 1000);
        let mut sizes = Vec::new();
        let mut keys = Vec::new();
        while let Some(page) = pager.next(&store).await.expect("page") {
            sizes.push(page.kvs.len());
            keys.extend(page.kvs.into_iter().map(|kv| kv.key));
        }
        // The first page is cut by count (all ten); later ones hold what fits in PAGE_BYTES.
        assert_eq!(keys, (0..10).map(|i| format!("p/{i}")).collect::<Vec<_>>());
        let mut again = Pager::new("p/", 1000).start_after(Some("p/6".into()));
        let page = again.next(&store).await.expect("page").expect("some");
        assert_eq!(page.kvs.len(), 3, "resumes after the token");
        assert_eq!(sizes, vec![10]);
        let mut small = Pager::new("p/", 4);
        let mut counts = Vec::new();
        while let Some(page) = small.next(&store).await.expect("page") {
            counts.push(page.kvs.len());
        }
        assert_eq!(
            counts,
            vec![4, 2, 2, 2],
            "after one page, pages fit the byte budget"
        );
    }
}
