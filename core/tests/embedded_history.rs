//! The embedded store bounds its watch history by size, not only by count: large values
//! cannot fill the disk with history.

use std::time::Duration;

use uni_core::store::{EmbeddedOptions, EmbeddedStore, KvStore};
use uni_core::Error;

#[tokio::test]
async fn history_is_compacted_to_its_byte_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = EmbeddedOptions {
        history_bytes: 1 << 20,
        compaction_interval: Duration::from_millis(50),
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path().join("db"), opts)
        .await
        .expect("open");
    // 40 revisions of 100 KiB: four times the bound.
    for i in 0..40 {
        store
            .put("big", vec![b'x'; 100 << 10], 0)
            .await
            .unwrap_or_else(|e| panic!("put {i}: {e}"));
    }
    let current = store.revision().await.expect("revision");
    // About 10 revisions of 100 KiB fit in 1 MiB. Wait (bounded) for the maintenance task
    // to compact down to that; an earlier pass may have compacted less while writes ran.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let compact_revision = loop {
        let compacted = match store.watch("big", 1).await {
            Err(Error::Compacted {
                compact_revision, ..
            }) => compact_revision,
            _ => 0,
        };
        if compacted > 0 && current - compacted < 11 {
            break compacted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history was not compacted to its bound: compacted to {compacted} of {current}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let kept = current - compact_revision + 1;
    assert!(
        kept >= 5,
        "kept only {kept} revisions: more than the bound was dropped"
    );
    let mut replay = store
        .watch("big", compact_revision)
        .await
        .expect("the retained window still replays");
    let first = futures::StreamExt::next(&mut replay)
        .await
        .expect("an event")
        .expect("not compacted");
    assert_eq!(first[0].kv.mod_revision, compact_revision);
    store.close().await;
}
