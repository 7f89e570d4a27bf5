//! Store semantics that every [`KvStore`] implementation must have. Each test takes a fresh
//! backend; none depends on absolute revision numbers, only on their order.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use uni_core::store::watcher::Event as WatcherEvent;
use uni_core::store::{
    Compare, CompareOp, EventKind, KvStore, LeaseKeeper, RangeOptions, Txn, TxnOp, TxnOpResult,
    WatchEvent, WatchStream, Watcher,
};
use uni_core::Error;

use super::Backend;

const WAIT: Duration = Duration::from_secs(20);
/// etcd rounds lease TTLs up to its minimum (2 s with default timings); use that everywhere.
const TTL: Duration = Duration::from_secs(2);

/// Collects at least `n` events (whole batches), failing if they do not arrive within [`WAIT`].
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    let collect = async {
        while out.len() < n {
            match stream.next().await {
                Some(Ok(batch)) => out.extend(batch),
                Some(Err(e)) => panic!("watch failed: {e}"),
                None => panic!("watch ended after {} of {n} events", out.len()),
            }
        }
    };
    tokio::time::timeout(WAIT, collect)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {n} watch events"));
    out
}

fn keys(events: &[WatchEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kv.key.as_str()).collect()
}

pub async fn put_get_delete_track_revisions_and_versions(b: Backend) {
    let s = b.store();
    assert_eq!(s.get("/t/a").await.unwrap(), None);
    let r1 = s.put("/t/a", b"1".to_vec(), 0).await.unwrap();
    let r2 = s.put("/t/a", b"2".to_vec(), 0).await.unwrap();
    assert!(r2 > r1, "revisions must increase: {r1} then {r2}");
    let kv = s.get("/t/a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"2");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    assert_eq!(s.revision().await.unwrap(), r2);

    let (r3, existed) = s.delete("/t/a").await.unwrap();
    assert!(existed && r3 > r2);
    assert_eq!(s.get("/t/a").await.unwrap(), None);
    // Deleting what is not there changes nothing, not even the revision.
    let (r4, existed) = s.delete("/t/a").await.unwrap();
    assert!(!existed);
    assert_eq!(r4, r3);

    // A re-created key starts a new life: new create revision, version 1.
    let r5 = s.put("/t/a", b"3".to_vec(), 0).await.unwrap();
    let kv = s.get("/t/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (r5, 1));
}

pub async fn range_is_sorted_by_key_and_pages_without_overlap(b: Backend) {
    let s = b.store();
    let names = ["m", "c", "x", "a", "k", "b", "z", "d"];
    for n in names {
        s.put(&format!("/p/{n}"), n.as_bytes().to_vec(), 0)
            .await
            .unwrap();
    }
    // Siblings that share the prefix text but not the directory must not match.
    s.put("/pa", b"no".to_vec(), 0).await.unwrap();
    s.put("/o/a", b"no".to_vec(), 0).await.unwrap();

    let all = s.range("/p/", RangeOptions::default()).await.unwrap();
    let mut sorted: Vec<String> = names.iter().map(|n| format!("/p/{n}")).collect();
    sorted.sort();
    let got: Vec<String> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, sorted);
    assert!(!all.more);
    assert_eq!(all.revision, s.revision().await.unwrap());

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .range(
                "/p/",
                RangeOptions {
                    start_after: after.clone(),
                    limit: Some(3),
                },
            )
            .await
            .unwrap();
        assert!(page.kvs.len() <= 3);
        paged.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(paged, sorted);
}

pub async fn txn_runs_success_branch_when_compares_hold(b: Backend) {
    let s = b.store();
    let rev = s.put("/t/k", b"v1".to_vec(), 0).await.unwrap();
    let resp = s
        .txn(
            Txn::new()
                .when([Compare::mod_revision("/t/k", CompareOp::Equal, rev)])
                .and_then([TxnOp::put("/t/k", "v2"), TxnOp::put("/t/other", "o")])
                .or_else([TxnOp::get("/t/k")]),
        )
        .await
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.results, vec![TxnOpResult::Put, TxnOpResult::Put]);
    assert!(resp.revision > rev);
    let kv = s.get("/t/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"v2"[..], resp.revision)
    );
    assert!(s.get("/t/other").await.unwrap().is_some());
}

pub async fn txn_runs_failure_branch_and_writes_nothing_else(b: Backend) {
    let s = b.store();
    let stale = s.put("/t/k", b"v1".to_vec(), 0).await.unwrap();
    s.put("/t/k", b"v2".to_vec(), 0).await.unwrap();
    let before = s.revision().await.unwrap();
    let resp = s
        .txn(
            Txn::new()
                .when([Compare::mod_revision("/t/k", CompareOp::Equal, stale)])
                .and_then([TxnOp::put("/t/k", "lost"), TxnOp::put("/t/new", "lost")])
                .or_else([TxnOp::get("/t/k")]),
        )
        .await
        .unwrap();
    assert!(!resp.succeeded);
    match &resp.results[..] {
        [TxnOpResult::Get(Some(kv))] => assert_eq!(kv.value, b"v2"),
        other => panic!("expected the current value from the failure branch, got {other:?}"),
    }
    // A read-only branch does not move the revision, and the success branch left no trace.
    assert_eq!(resp.revision, before);
    assert_eq!(s.get("/t/k").await.unwrap().unwrap().value, b"v2");
    assert_eq!(s.get("/t/new").await.unwrap(), None);
}

pub async fn txn_create_if_absent_and_value_compare(b: Backend) {
    let s = b.store();
    let create = || {
        Txn::new()
            .when([Compare::absent("/t/once")])
            .and_then([TxnOp::put("/t/once", "first")])
    };
    assert!(s.txn(create()).await.unwrap().succeeded);
    assert!(!s.txn(create()).await.unwrap().succeeded);

    let swap = |from: &str, to: &str| {
        Txn::new()
            .when([Compare::value("/t/once", CompareOp::Equal, from)])
            .and_then([TxnOp::put("/t/once", to.to_string())])
    };
    assert!(!s.txn(swap("nope", "x")).await.unwrap().succeeded);
    assert!(s.txn(swap("first", "second")).await.unwrap().succeeded);
    assert_eq!(s.get("/t/once").await.unwrap().unwrap().value, b"second");

    // Every value comparison against a missing key fails, even "not equal".
    let ne_missing = Txn::new()
        .when([Compare::value("/t/missing", CompareOp::NotEqual, "x")])
        .and_then([TxnOp::put("/t/flag", "set")]);
    assert!(!s.txn(ne_missing).await.unwrap().succeeded);
    let greater = Txn::new()
        .when([Compare::version("/t/once", CompareOp::Greater, 1)])
        .and_then([TxnOp::delete("/t/once")]);
    let resp = s.txn(greater).await.unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.results, vec![TxnOpResult::Delete(1)]);
}

pub async fn txn_rejects_writing_one_key_twice(b: Backend) {
    let s = b.store();
    let before = s.revision().await.unwrap();
    let err = s
        .txn(Txn::new().and_then([TxnOp::put("/t/d", "1"), TxnOp::put("/t/d", "2")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(s.revision().await.unwrap(), before);
    assert_eq!(s.get("/t/d").await.unwrap(), None);
}

pub async fn txn_commits_many_keys_at_one_revision(b: Backend) {
    let s = b.store();
    let mut watch = s.watch("/batch/", 0).await.unwrap();
    let ops: Vec<TxnOp> = (0..100)
        .map(|i| TxnOp::put(format!("/batch/{i:03}"), vec![i as u8]))
        .collect();
    let resp = s.txn(Txn::new().and_then(ops)).await.unwrap();
    let all = s.range("/batch/", RangeOptions::default()).await.unwrap();
    assert_eq!(all.kvs.len(), 100);
    assert!(all.kvs.iter().all(|kv| kv.mod_revision == resp.revision));
    let events = next_events(&mut watch, 100).await;
    assert!(events.iter().all(|e| e.kv.mod_revision == resp.revision));
}

pub async fn watch_replays_history_then_follows_live_writes(b: Backend) {
    let s = b.store();
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(s.put(&format!("/w/{i}"), vec![i], 0).await.unwrap());
    }
    let mut watch = s.watch("/w/", revs[1]).await.unwrap();
    let replay = next_events(&mut watch, 4).await;
    assert_eq!(replay.len(), 4, "{replay:?}");
    assert_eq!(keys(&replay), ["/w/1", "/w/2", "/w/3", "/w/4"]);
    assert_eq!(
        replay.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        revs[1..]
    );
    let live = s.put("/w/5", vec![5], 0).await.unwrap();
    let next = next_events(&mut watch, 1).await;
    assert_eq!(
        (next[0].kv.key.as_str(), next[0].kv.mod_revision),
        ("/w/5", live)
    );
    assert_eq!(next[0].kind, EventKind::Put);
    assert_eq!(next[0].kv.value, vec![5]);
}

pub async fn watch_only_sees_its_prefix(b: Backend) {
    let s = b.store();
    let mut watch = s.watch("/mine/", 0).await.unwrap();
    s.put("/other/a", b"x".to_vec(), 0).await.unwrap();
    s.put("/mine", b"x".to_vec(), 0).await.unwrap();
    s.put("/mine/a", b"x".to_vec(), 0).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(keys(&events), ["/mine/a"]);
}

pub async fn watch_reports_deletes(b: Backend) {
    let s = b.store();
    s.put("/d/a", b"x".to_vec(), 0).await.unwrap();
    let mut watch = s.watch("/d/", 0).await.unwrap();
    let (rev, _) = s.delete("/d/a").await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(events[0].kv.key, "/d/a");
    assert_eq!(events[0].kv.mod_revision, rev);
}

pub async fn watch_resumes_without_gap_after_restart(mut b: Backend) {
    let last_seen = {
        let s = b.store();
        let mut watch = s.watch("/r/", 0).await.unwrap();
        for i in 0..3 {
            s.put(&format!("/r/{i}"), vec![i], 0).await.unwrap();
        }
        let seen = next_events(&mut watch, 2).await;
        seen[1].kv.mod_revision
    };
    b.restart().await;
    let s = b.store();
    for i in 3..6 {
        s.put(&format!("/r/{i}"), vec![i], 0).await.unwrap();
    }
    // A watcher that restarts from the revision after the last it handled misses nothing.
    let mut watch = s.watch("/r/", last_seen + 1).await.unwrap();
    let rest = next_events(&mut watch, 4).await;
    assert_eq!(keys(&rest), ["/r/2", "/r/3", "/r/4", "/r/5"]);
}

pub async fn watch_from_compacted_revision_fails_clearly(b: Backend) {
    let s = b.store();
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(s.put(&format!("/c/{i}"), vec![i], 0).await.unwrap());
    }
    s.compact(revs[5]).await.unwrap();
    // Compacting again at or below the compacted revision is refused.
    let err = s.compact(revs[2]).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");

    let err = match s.watch("/c/", revs[2]).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(WAIT, w.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("expected a compaction error, got {other:?}"),
        },
    };
    assert!(err.to_string().contains("compacted"), "{err}");
    match err {
        Error::Compacted {
            compact_revision, ..
        } => assert!(compact_revision >= revs[5]),
        other => panic!("expected Compacted, got {other}"),
    }

    // History from the compaction point on is still there.
    let mut w = s.watch("/c/", revs[5]).await.unwrap();
    let events = next_events(&mut w, 5).await;
    assert_eq!(keys(&events), ["/c/5", "/c/6", "/c/7", "/c/8", "/c/9"]);
}

/// Waits until `key` is deleted, as seen by a watch started at `from`.
async fn wait_deleted(s: &Arc<dyn KvStore>, key: &str, from: i64, within: Duration) -> bool {
    let mut w = s.watch(key, from).await.unwrap();
    let deleted = async {
        while let Some(batch) = w.next().await {
            let batch = batch.unwrap();
            if batch
                .iter()
                .any(|e| e.kind == EventKind::Delete && e.kv.key == key)
            {
                return;
            }
        }
    };
    tokio::time::timeout(within, deleted).await.is_ok()
}

pub async fn lease_expiry_deletes_attached_keys(b: Backend) {
    let s = b.store();
    let lease = s.lease_grant(TTL).await.unwrap();
    let rev = s.put("/l/node", b"up".to_vec(), lease).await.unwrap();
    s.put("/l/free", b"stays".to_vec(), 0).await.unwrap();
    assert_eq!(s.get("/l/node").await.unwrap().unwrap().lease, lease);
    assert!(
        wait_deleted(&s, "/l/node", rev, WAIT).await,
        "leased key never expired"
    );
    assert_eq!(s.get("/l/node").await.unwrap(), None);
    assert!(s.get("/l/free").await.unwrap().is_some());
    let err = s.lease_keep_alive(lease).await.unwrap_err();
    assert!(
        matches!(err, Error::LeaseNotFound(id) if id == lease),
        "{err}"
    );
}

pub async fn lease_keep_alive_keeps_keys_and_revoke_deletes_them(b: Backend) {
    let s = b.store();
    let keeper = LeaseKeeper::grant(s.clone(), TTL).await.unwrap();
    let rev = s.put("/l/a", b"1".to_vec(), keeper.id()).await.unwrap();
    s.put("/l/b", b"2".to_vec(), keeper.id()).await.unwrap();
    // Kept alive for three TTLs, the keys must not be deleted.
    assert!(
        !wait_deleted(&s, "/l/a", rev, TTL * 3).await,
        "a kept-alive lease expired"
    );
    assert!(!keeper.lost().is_cancelled());
    let id = keeper.id();
    keeper.revoke().await.unwrap();
    assert_eq!(s.get("/l/a").await.unwrap(), None);
    assert_eq!(s.get("/l/b").await.unwrap(), None);
    assert!(matches!(
        s.lease_keep_alive(id).await,
        Err(Error::LeaseNotFound(_))
    ));
}

pub async fn put_with_unknown_lease_fails(b: Backend) {
    let s = b.store();
    let err = s.put("/l/x", b"1".to_vec(), 424242).await.unwrap_err();
    assert!(matches!(err, Error::LeaseNotFound(424242)), "{err}");
    assert_eq!(s.get("/l/x").await.unwrap(), None);
}

pub async fn data_and_leases_survive_restart(mut b: Backend) {
    let (before, lease, leased_rev) = {
        let s = b.store();
        let ops: Vec<TxnOp> = (0..50)
            .map(|i| TxnOp::put(format!("/keep/{i:02}"), format!("v{i}")))
            .collect();
        s.txn(Txn::new().and_then(ops)).await.unwrap();
        let lease = s.lease_grant(TTL).await.unwrap();
        let leased_rev = s.put("/keep-leased", b"x".to_vec(), lease).await.unwrap();
        let before = s.range("/keep/", RangeOptions::default()).await.unwrap();
        (before, lease, leased_rev)
    };
    b.restart().await;
    let s = b.store();
    let after = s.range("/keep/", RangeOptions::default()).await.unwrap();
    assert_eq!(after.kvs, before.kvs, "data changed across a restart");
    // The revision counter continues where it was, it never goes back.
    let rev = s.put("/keep/new", b"n".to_vec(), 0).await.unwrap();
    assert!(rev > leased_rev);
    // The lease survived the restart and, without keep-alives, still expires.
    assert_eq!(
        s.get("/keep-leased").await.unwrap().map(|kv| kv.lease),
        Some(lease)
    );
    assert!(wait_deleted(&s, "/keep-leased", leased_rev, WAIT).await);
}

pub async fn concurrent_cas_writers_lose_no_update(b: Backend) {
    const WRITERS: usize = 4;
    const INCREMENTS: usize = 20;
    let s = b.store();
    s.put("/cas/counter", b"0".to_vec(), 0).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.spawn(async move {
            let mut conflicts = 0;
            for i in 0..INCREMENTS {
                loop {
                    let kv = s.get("/cas/counter").await.unwrap().unwrap();
                    let n: usize = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    let txn = Txn::new()
                        .when([Compare::mod_revision(
                            "/cas/counter",
                            CompareOp::Equal,
                            kv.mod_revision,
                        )])
                        .and_then([
                            TxnOp::put("/cas/counter", (n + 1).to_string()),
                            TxnOp::put(format!("/cas/log/{w}-{i}"), n.to_string()),
                        ]);
                    if s.txn(txn).await.unwrap().succeeded {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let total = WRITERS * INCREMENTS;
    let kv = s.get("/cas/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, total.to_string().into_bytes());
    // Each increment saw a distinct previous value: no two writers won the same round.
    let log = s.range("/cas/log/", RangeOptions::default()).await.unwrap();
    let mut seen: Vec<usize> = log
        .kvs
        .iter()
        .map(|kv| {
            String::from_utf8(kv.value.clone())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
}

/// The list-and-watch helper every component mirrors the store with.
pub async fn watcher_lists_in_pages_then_follows_changes(b: Backend) {
    let s = b.store();
    for i in 0..5 {
        s.put(&format!("/w/{i}"), vec![i], 0).await.unwrap();
    }
    s.put("/x/outside", vec![], 0).await.unwrap();
    let mut w = Watcher::new(s.clone(), "/w/").page_size(2);
    let first = tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap();
    let [WatcherEvent::Restarted { kvs, revision }] = first.as_slice() else {
        panic!("expected one Restarted, got {first:?}");
    };
    let listed: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(listed, ["/w/0", "/w/1", "/w/2", "/w/3", "/w/4"]);
    assert!(*revision >= kvs.iter().map(|kv| kv.mod_revision).max().unwrap());

    s.put("/w/5", vec![5], 0).await.unwrap();
    s.delete("/w/0").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap());
    }
    match seen.as_slice() {
        [WatcherEvent::Applied(a), WatcherEvent::Deleted(d)] => {
            assert_eq!((a.key.as_str(), a.value.as_slice()), ("/w/5", &[5u8][..]));
            assert_eq!(d.key, "/w/0");
        }
        other => panic!("expected Applied then Deleted, got {other:?}"),
    }

    // Asked to start over, it lists what is there now.
    w.restart();
    let again = tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap();
    let [WatcherEvent::Restarted { kvs, .. }] = again.as_slice() else {
        panic!("expected one Restarted, got {again:?}");
    };
    let listed: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(listed, ["/w/1", "/w/2", "/w/3", "/w/4", "/w/5"]);
}
