//! Store write rate: the same workload of batched puts against etcd and the embedded store,
//! measured in one run so the two can be compared as a ratio.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;
use uni_core::store::{EmbeddedStore, EtcdStore, KvStore, Txn, TxnOp};
use uni_core::testing::EtcdServer;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// etcd to measure; without it a private etcd is started on free ports.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Keys written per backend and mode.
    #[arg(long, default_value_t = 20_000)]
    keys: usize,
    /// Puts per transaction (etcd's default limit is 128).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Rate {
    backend: &'static str,
    mode: &'static str,
    keys: usize,
    seconds: f64,
    keys_per_second: f64,
    txns_per_second: f64,
}

#[derive(Serialize)]
struct Report {
    batch: usize,
    writers: usize,
    value_size: usize,
    results: Vec<Rate>,
    /// Embedded batched rate divided by etcd's, measured in this run.
    embedded_vs_etcd_batched: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _private_etcd;
    let endpoints = if args.etcd_endpoints.is_empty() {
        let server = EtcdServer::start()
            .await
            .context("starting a private etcd")?;
        let e = vec![server.endpoint()];
        _private_etcd = server;
        e
    } else {
        args.etcd_endpoints.clone()
    };
    let etcd: Arc<dyn KvStore> = Arc::new(EtcdStore::connect(&endpoints).await?);
    let dir = tempfile::tempdir()?;
    let embedded: Arc<dyn KvStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).await?);

    let mut results = Vec::new();
    for (name, store) in [("etcd", &etcd), ("embedded", &embedded)] {
        results.push(measure(name, "batched", store, &args, args.batch).await?);
        // Unbatched writes are far slower; a tenth of the keys gives a stable rate.
        let single = Args {
            keys: (args.keys / 10).max(args.writers),
            ..args.clone()
        };
        results.push(measure(name, "single", store, &single, 1).await?);
    }
    let batched = |b: &str| {
        results
            .iter()
            .find(|r| r.backend == b && r.mode == "batched")
            .map_or(0.0, |r| r.keys_per_second)
    };
    let report = Report {
        batch: args.batch,
        writers: args.writers,
        value_size: args.value_size,
        embedded_vs_etcd_batched: batched("embedded") / batched("etcd").max(f64::MIN_POSITIVE),
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

async fn measure(
    backend: &'static str,
    mode: &'static str,
    store: &Arc<dyn KvStore>,
    args: &Args,
    batch: usize,
) -> anyhow::Result<Rate> {
    let per_writer = args.keys / args.writers;
    let value = vec![b'x'; args.value_size];
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..args.writers {
        let store = store.clone();
        let value = value.clone();
        tasks.spawn(async move {
            let mut txns = 0usize;
            for chunk in (0..per_writer).collect::<Vec<_>>().chunks(batch) {
                let ops = chunk
                    .iter()
                    .map(|i| TxnOp::put(format!("/bench/{mode}/{w}/{i:08}"), value.clone()));
                store.txn(Txn::new().and_then(ops)).await?;
                txns += 1;
            }
            anyhow::Ok(txns)
        });
    }
    let mut txns = 0;
    while let Some(r) = tasks.join_next().await {
        txns += r??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let keys = per_writer * args.writers;
    Ok(Rate {
        backend,
        mode,
        keys,
        seconds,
        keys_per_second: keys as f64 / seconds,
        txns_per_second: txns as f64 / seconds,
    })
}

fn print_table(r: &Report) {
    println!(
        "store write rate: batch {} puts/txn, {} writers, {} B values",
        r.batch, r.writers, r.value_size
    );
    println!(
        "{:<10} {:<8} {:>8} {:>9} {:>12} {:>10}",
        "BACKEND", "MODE", "KEYS", "SECONDS", "KEYS/S", "TXNS/S"
    );
    for x in &r.results {
        println!(
            "{:<10} {:<8} {:>8} {:>9.2} {:>12.0} {:>10.0}",
            x.backend, x.mode, x.keys, x.seconds, x.keys_per_second, x.txns_per_second
        );
    }
    println!(
        "embedded / etcd (batched): {:.2}x",
        r.embedded_vs_etcd_batched
    );
}
