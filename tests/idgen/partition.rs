//! `idgen_partition`: the leader is cut off from both followers. It stops issuing within its
//! lease; the other two elect a leader and go on; after the heal the checker finds no
//! violation.

use std::time::{Duration, Instant};

use crate::workload::Workload;
use gru_testkit::history::check_strict;
use gru_testkit::{ClusterOptions, NodeSpec, TestCluster};

/// The leader lease with the default Raft timing: election_timeout_min (250) - 2 × heartbeat (50).
const LEASE: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_partition() {
    let all = [1, 2, 3];
    let options = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let (cluster, leader, _) = TestCluster::launch(
        crate::gru(),
        &[NodeSpec::core(1), NodeSpec::core(2), NodeSpec::core(3)],
        options,
    )
    .await;
    let workload = Workload::start(&cluster, 4);
    cluster
        .wait_for("ids to flow", Duration::from_secs(20), || async {
            (workload.served() > 100).then_some(())
        })
        .await;

    // Probe the old leader directly over HTTP: it must stop handing out ids within its lease.
    let http = gru_testkit::admin_http();
    let url = format!("http://{}/api/v1/ids?count=1", cluster.admin_addr(leader));
    assert_eq!(
        http.get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok(),
        Some(200)
    );

    let cut = Instant::now();
    cluster.partition(leader);
    let mut last_success = None;
    while cut.elapsed() < Duration::from_secs(3) {
        let sent = Instant::now();
        if let Ok(resp) = http.get(&url).timeout(Duration::from_secs(3)).send().await {
            if resp.status() == 200 {
                last_success = Some(sent.duration_since(cut));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("partitioned leader {leader}: last id it handed out to a request sent {last_success:?} after the cut");
    if let Some(after) = last_success {
        assert!(
            after <= LEASE,
            "the cut-off leader issued ids {after:?} after the cut (lease {LEASE:?})"
        );
    }

    let others: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let (new_leader, _) = cluster.wait_leader(&others, Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    let before = workload.served();
    cluster
        .wait_for(
            "ids to flow from the new leader",
            Duration::from_secs(20),
            || async { (workload.served() > before + 100).then_some(()) },
        )
        .await;

    cluster.heal(leader);
    cluster.wait_converged(&all, Duration::from_secs(30)).await;
    let before = workload.served();
    cluster
        .wait_for(
            "ids to flow after the heal",
            Duration::from_secs(20),
            || async { (workload.served() > before + 100).then_some(()) },
        )
        .await;
    let ops = workload.finish().await;
    let checked = check_strict(&ops).unwrap_or_else(|e| panic!("history check failed: {e}"));
    eprintln!(
        "{} requests, {checked} ids: no duplicate, real-time order holds",
        ops.len()
    );
}
