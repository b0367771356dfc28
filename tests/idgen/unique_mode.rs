//! `idgen_unique`: in unique mode 3 nodes issue 1,000,000 ids each concurrently: no
//! duplicates, distinct worker ids; a restarted node keeps its worker id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gru::services::idgen::layout::unique_worker;

use gru_testkit::{ClusterOptions, TestCluster};

const PER_NODE: u64 = 1_000_000;
const BATCH: u32 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_unique() {
    let all = [1, 2, 3];
    let options = ClusterOptions {
        extra_toml: "[idgen]\nmode = \"unique\"\n".into(),
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::builder()
        .cores(&all)
        .options(options)
        .launch()
        .await;
    let workers: BTreeMap<u64, u16> = cluster
        .wait_for(
            "every node to have a worker id",
            Duration::from_secs(20),
            || async {
                let view = cluster.view(1).await?;
                (view.workers.len() == 3).then_some(view.workers)
            },
        )
        .await;
    let distinct: BTreeSet<u16> = workers.values().copied().collect();
    assert_eq!(distinct.len(), 3, "worker ids are distinct: {workers:?}");

    let mut tasks = Vec::new();
    for id in all {
        let client = cluster.client_of(id);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(PER_NODE as usize);
            while (ids.len() as u64) < PER_NODE {
                let blocks = client.next_ids(BATCH).await.expect("unique ids");
                for (first, count) in blocks {
                    ids.extend(first..first + u64::from(count));
                }
            }
            (id, ids)
        }));
    }
    let mut all_ids = Vec::with_capacity(3 * PER_NODE as usize);
    for task in tasks {
        let (id, ids) = task.await.expect("issuer task");
        let seen: BTreeSet<u16> = ids.iter().map(|i| unique_worker(*i)).collect();
        assert_eq!(
            seen,
            BTreeSet::from([workers[&id]]),
            "node {id} issues with its own worker id"
        );
        all_ids.extend(ids);
    }
    let total = all_ids.len();
    all_ids.sort_unstable();
    all_ids.dedup();
    assert_eq!(
        all_ids.len(),
        total,
        "{} duplicate ids",
        total - all_ids.len()
    );
    eprintln!("{total} unique ids from 3 nodes, workers {workers:?}");

    cluster.kill(2);
    cluster.restart(2);
    let client = cluster.client_of(2);
    let after = cluster
        .wait_for("node 2 to issue again", Duration::from_secs(20), || async {
            client.next_ids(10).await.ok()
        })
        .await;
    for (first, _) in after {
        assert_eq!(
            unique_worker(first),
            workers[&2],
            "node 2 kept its worker id after a restart"
        );
    }
    let view = cluster.view(1).await.expect("view");
    assert_eq!(view.workers, workers, "the worker table is unchanged");
}
