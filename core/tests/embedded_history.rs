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

/// A small tmpfs mounted for one test (CI runs as root), unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs failed: this test fills a real disk and needs root (CI runs \
             as root)"
        );
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_loses_nothing_acknowledged() {
    let disk = SmallDisk::mount("8m");
    // Room to give back later, as an operator freeing space would.
    let filler = disk.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).expect("filler");
    let path = disk.0.path().join("db");
    let store = EmbeddedStore::open(&path).await.expect("open");
    let mut acknowledged = Vec::new();
    let error = loop {
        let key = format!("k{:05}", acknowledged.len());
        match store.put(&key, vec![b'v'; 64 << 10], 0).await {
            Ok(_) => acknowledged.push(key),
            Err(e) => break e,
        }
        assert!(acknowledged.len() < 10_000, "the disk never filled");
    };
    assert!(matches!(error, Error::NoSpace(_)), "{error:?}");
    assert!(!acknowledged.is_empty());
    let health = store.health().await.expect("health");
    assert!(
        health.alarms.iter().any(|a| a == "NOSPACE"),
        "{:?}",
        health.alarms
    );
    // Reads keep working; a later write fails the same way, not with something worse.
    assert!(store.get(&acknowledged[0]).await.expect("read").is_some());
    let again = store.put("more", b"x".to_vec(), 0).await.expect_err("full");
    assert!(matches!(again, Error::NoSpace(_)), "{again:?}");
    store.close().await;

    // Space freed and the store opened again: every acknowledged write is there, writes work.
    std::fs::remove_file(&filler).expect("free space");
    let store = EmbeddedStore::open(&path).await.expect("reopen");
    for key in &acknowledged {
        assert!(
            store.get(key).await.expect("read").is_some(),
            "acknowledged {key} lost"
        );
    }
    store
        .put("more", b"x".to_vec(), 0)
        .await
        .expect("writes work again");
    assert!(store.health().await.expect("health").alarms.is_empty());
}
