//! `join_spears`: spear-only processes register with the group and appear on every core
//! within 2 s; a killed spear's lease expires and it disappears everywhere within the lease.

use std::time::{Duration, Instant};

use gru_testkit::{TestCluster, LEASE_TTL_MS};

async fn spears_everywhere(cluster: &TestCluster, cores: &[u64]) -> Vec<Vec<u64>> {
    let views = cluster.views(cores).await;
    cores
        .iter()
        .map(|id| {
            views
                .get(id)
                .map(|v| v.spears.iter().map(|s| s.id).collect())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_spears() {
    let cores = [1, 2, 3];
    let mut cluster = TestCluster::builder().cores(&cores).spears(&[4, 5]).build();
    for id in cores {
        cluster.start(id);
    }
    cluster.wait_leader(&cores, Duration::from_secs(30)).await;

    let started = Instant::now();
    cluster.start(4);
    cluster.start(5);
    cluster
        .wait_for(
            "both spears on every core",
            Duration::from_secs(20),
            || async {
                let seen = spears_everywhere(&cluster, &cores).await;
                seen.iter().all(|s| s == &vec![4, 5]).then_some(())
            },
        )
        .await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "spears took {took:?} to appear everywhere (limit 2 s)"
    );

    // A spear's own HTTP API shows the cluster too (through a core).
    let from_spear = cluster
        .view(4)
        .await
        .expect("spear 4 serves /api/v1/cluster");
    assert!(from_spear.has_spear(4) && from_spear.has_spear(5));

    cluster.kill(4);
    let killed = Instant::now();
    cluster
        .wait_for(
            "spear 4 to disappear everywhere",
            Duration::from_secs(30),
            || async {
                let seen = spears_everywhere(&cluster, &cores).await;
                seen.iter().all(|s| s == &vec![5]).then_some(())
            },
        )
        .await;
    let took = killed.elapsed();
    let limit = Duration::from_millis(LEASE_TTL_MS + 1000);
    assert!(
        took <= limit,
        "spear 4 took {took:?} to expire (lease {LEASE_TTL_MS} ms, limit {limit:?})"
    );
    assert!(
        cluster
            .log(cluster.view(1).await.and_then(|v| v.leader_id).unwrap_or(1))
            .contains("spear leases expired"),
        "the leader expired the lease through the log"
    );

    // A spear that shuts down gracefully deregisters at once instead of waiting out its lease.
    let stopping = Instant::now();
    assert!(cluster.stop(5), "spear 5 exits cleanly on SIGTERM");
    cluster
        .wait_for(
            "spear 5 to disappear everywhere",
            Duration::from_secs(30),
            || async {
                let seen = spears_everywhere(&cluster, &cores).await;
                seen.iter().all(Vec::is_empty).then_some(())
            },
        )
        .await;
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_millis(LEASE_TTL_MS),
        "graceful deregistration took {took:?}"
    );
    assert!(cluster.log(5).contains("spear deregistered"));
}
