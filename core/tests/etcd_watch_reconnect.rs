//! etcd-specific: a live watch survives etcd going away and coming back, with no gap and no
//! duplicate, without the caller re-creating it.

use std::time::Duration;

use futures::StreamExt;
use uni_core::store::KvStore;
use uni_core::testing::EtcdServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_watch_resumes_after_etcd_restart() {
    let mut etcd = EtcdServer::start().await.unwrap();
    let store = etcd.store().await.unwrap();
    let mut watch = store.watch("/rc/", 0).await.unwrap();
    for i in 0..3 {
        store.put(&format!("/rc/{i}"), vec![i], 0).await.unwrap();
    }
    etcd.restart().await.unwrap();
    // The old client reconnects by itself once etcd is back.
    for i in 3..6 {
        let key = format!("/rc/{i}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.put(&key, vec![i], 0).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not come back"
            );
            tokio::task::yield_now().await;
        }
    }
    let mut seen = Vec::new();
    let collect = async {
        while seen.len() < 6 {
            let batch = watch
                .next()
                .await
                .expect("watch ended")
                .expect("watch failed");
            seen.extend(batch.into_iter().map(|e| e.kv.key));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("events after the restart never arrived");
    let want: Vec<String> = (0..6).map(|i| format!("/rc/{i}")).collect();
    assert_eq!(seen, want);
}
