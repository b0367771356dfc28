//! `durability`: 1,000 writes through the leader while it is killed -9 mid-stream; every
//! acknowledged write is on both survivors, and on the killed node after its restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{NodeSpec, TestCluster};

const WRITES: usize = 1000;
const KILL_AT: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability() {
    let all = [1, 2, 3];
    let mut cluster = TestCluster::new(&[NodeSpec::core(1), NodeSpec::core(2), NodeSpec::core(3)]);
    cluster.start_all();
    let (leader, _) = cluster.wait_leader(&all, Duration::from_secs(30)).await;
    let client = cluster.client();

    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut failed_attempts = 0;
    for i in 0..WRITES {
        if i == KILL_AT {
            cluster.kill(leader);
        }
        let (key, value) = (format!("key-{i:04}"), format!("value-{i}"));
        let start = Instant::now();
        loop {
            match client.put_meta(&key, &value).await {
                Ok(()) => {
                    acked.insert(key, value);
                    break;
                }
                Err(e) => {
                    failed_attempts += 1;
                    assert!(start.elapsed() < Duration::from_secs(30), "write {i} never acknowledged: {e}");
                }
            }
        }
    }
    assert_eq!(acked.len(), WRITES);
    eprintln!("{WRITES} writes acknowledged; {failed_attempts} attempts failed around the kill");

    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
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
        .wait_for(&format!("node {id} to hold every acknowledged write"), Duration::from_secs(30), || async {
            let entries: BTreeMap<String, String> = client.get_meta_local(&addr).await.ok()?.into_iter().collect();
            acked.iter().all(|(k, v)| entries.get(k) == Some(v)).then_some(())
        })
        .await;
}
