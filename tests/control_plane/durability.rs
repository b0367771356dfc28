//! `durability`: 1,000 writes through the leader while it is killed -9 mid-stream; every
//! acknowledged write is on both survivors, and on the killed node after its restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gru_testkit::{TestCluster, CORES};

const WRITES: usize = 1000;
const KILL_AFTER: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability() {
    let (mut cluster, leader, _) = TestCluster::three_cores(crate::gru()).await;

    // The writer runs on its own so that writes are in flight when the leader dies. A write
    // counts as acknowledged only when the client got the leader's OK (committed and applied).
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, acked, acked_count) = (cluster.client(), acked.clone(), acked_count.clone());
        tokio::spawn(async move {
            let mut failures = 0;
            let mut longest_stall = Duration::ZERO;
            for i in 0..WRITES {
                let (key, value) = (format!("key-{i:04}"), format!("value-{i}"));
                let start = Instant::now();
                loop {
                    match client.put_meta(&key, &value).await {
                        Ok(()) => break,
                        Err(e) => {
                            failures += 1;
                            assert!(
                                start.elapsed() < Duration::from_secs(30),
                                "write {i} never acknowledged: {e}"
                            );
                        }
                    }
                }
                longest_stall = longest_stall.max(start.elapsed());
                acked.lock().expect("acked").insert(key, value);
                acked_count.fetch_add(1, Ordering::SeqCst);
            }
            (failures, longest_stall)
        })
    };
    cluster
        .wait_for("the first writes", Duration::from_secs(30), || async {
            (acked_count.load(Ordering::SeqCst) >= KILL_AFTER).then_some(())
        })
        .await;
    cluster.kill(leader);
    let killed_at = acked_count.load(Ordering::SeqCst);
    let (failures, longest_stall) = writer.await.expect("writer finished");
    eprintln!(
        "leader {leader} killed after {killed_at} acks; {WRITES} writes acknowledged; \
         {failures} calls failed; longest wait for one write {longest_stall:?}"
    );
    assert!(killed_at < WRITES, "the kill happened mid-stream");

    let survivors: Vec<u64> = CORES.iter().copied().filter(|id| *id != leader).collect();
    let (new_leader, _) = cluster
        .wait_leader(&survivors, Duration::from_secs(20))
        .await;
    assert_ne!(new_leader, leader);
    let acked = acked.lock().expect("acked").clone();
    assert_eq!(acked.len(), WRITES);
    for id in &survivors {
        wait_has_all(&cluster, *id, &acked).await;
    }
    cluster.restart(leader);
    wait_has_all(&cluster, leader, &acked).await;
}

async fn wait_has_all(cluster: &TestCluster, id: u64, acked: &BTreeMap<String, String>) {
    let client = cluster.client();
    let addr = cluster.grpc_addr(id);
    cluster
        .wait_for(
            &format!("node {id} to hold every acknowledged write"),
            Duration::from_secs(30),
            || async {
                let entries: BTreeMap<String, String> = client
                    .get_meta_local(&addr)
                    .await
                    .ok()?
                    .into_iter()
                    .collect();
                acked
                    .iter()
                    .all(|(k, v)| entries.get(k) == Some(v))
                    .then_some(())
            },
        )
        .await;
}
