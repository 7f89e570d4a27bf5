//! Two training workers, on two agents, started through allocations with the variables the
//! scheduler sets: each sees its rank, and they reach each other at MASTER_ADDR:MASTER_PORT
//! for a real exchange, then both report Succeeded.

mod common;

use std::time::Duration;

use common::*;
use tokio_stream::StreamExt;
use uni_core::model::ReplicaPhase;
use uni_proto::v1::log_service_client::LogServiceClient;
use uni_proto::v1::StreamLogsRequest;

/// Rank 0 listens on MASTER_PORT and answers every other rank with the sum of all ranks;
/// the others connect (retrying until rank 0 listens) and check the answer.
const RENDEZVOUS: &str = r#"
import os, socket, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
local = int(os.environ["LOCAL_RANK"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
print(f"rank={rank} world={world} local_rank={local} master={addr}:{port}", flush=True)
if rank == 0:
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port)); srv.listen()
    peers = [srv.accept()[0] for _ in range(world - 1)]
    ranks = [0] + [int(p.recv(64).decode()) for p in peers]
    for p in peers:
        p.sendall(str(sum(ranks)).encode()); p.close()
    print(f"rank 0 heard ranks {sorted(ranks)}", flush=True)
else:
    deadline = time.time() + 60
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=5); break
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.1)
    s.sendall(str(rank).encode())
    total = int(s.recv(64).decode())
    assert total == sum(range(world)), total
    print(f"rank {rank} got sum {total}", flush=True)
"#;

async fn output(addr: std::net::SocketAddr, workload: &str, replica: u32) -> String {
    let mut client = LogServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut stream = client
        .stream_logs(StreamLogsRequest {
            namespace: NS.into(),
            workload: workload.into(),
            replica: Some(replica),
            ..StreamLogsRequest::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = stream.next().await {
        out.extend(c.expect("chunk").data);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_see_their_ranks_and_rendezvous() {
    let (_etcd, store) = etcd().await;
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let agent_a = start_agent(config("node-a", da.path()), &store).await;
    let agent_b = start_agent(config("node-b", db.path()), &store).await;
    let w = training(
        "ddp",
        vec!["python3".into(), "-c".into(), RENDEZVOUS.into()],
        5,
    );
    put_workload(&store, &w).await;
    let master_port = free_port();
    let workers: Vec<_> = [(0, "node-a"), (1, "node-b")]
        .into_iter()
        .map(|(rank, node)| {
            let mut a = allocation(&w, rank, node);
            a.env = env(&[
                ("RANK", rank.to_string()),
                ("WORLD_SIZE", "2".into()),
                ("LOCAL_RANK", "0".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", master_port.to_string()),
            ]);
            if rank == 0 {
                a.port = master_port;
            }
            a
        })
        .collect();
    let _guard = Guard::of(&[&workers[0], &workers[1]]);
    // The worker that must connect starts first: it waits for rank 0 to listen.
    put_allocation(&store, &workers[1]).await;
    put_allocation(&store, &workers[0]).await;
    for a in &workers {
        let s = wait_status(&store, a, Duration::from_secs(90), "worker finished", |s| {
            s.phase.is_terminal()
        })
        .await;
        assert_eq!(s.phase, ReplicaPhase::Succeeded, "{s:?}");
        assert_eq!(s.exit_code, Some(0));
    }
    let out0 = output(agent_a.grpc_addr(), "ddp", 0).await;
    let out1 = output(agent_b.grpc_addr(), "ddp", 1).await;
    assert!(
        out0.contains(&format!(
            "rank=0 world=2 local_rank=0 master=127.0.0.1:{master_port}"
        )),
        "{out0}"
    );
    assert!(out0.contains("rank 0 heard ranks [0, 1]"), "{out0}");
    assert!(out1.contains("rank=1 world=2"), "{out1}");
    assert!(out1.contains("rank 1 got sum 1"), "{out1}");
    // Training workers are not restarted by the agent: the scheduler decides.
    assert_eq!(
        status(&store, &workers[0]).await.map(|s| s.restarts),
        Some(0)
    );
    for a in &workers {
        delete_allocation(&store, a).await;
    }
    for a in &workers {
        eventually(Duration::from_secs(10), "status removed", || async {
            status(&store, a).await.is_none().then_some(())
        })
        .await;
    }
    agent_a.shutdown().await;
    agent_b.shutdown().await;
}
