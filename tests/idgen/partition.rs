//! `idgen_partition`: the leader is cut off from both followers. It stops issuing within its
//! lease; the other two elect a leader and go on; after the heal the checker finds no
//! violation.

use std::time::{Duration, Instant};

use crate::workload::Workload;
use gru_testkit::history::check_strict;
use gru_testkit::{ClusterOptions, TestCluster};

/// The leader lease with the default Raft timing: election_timeout_min (250) - 2 × heartbeat (50).
const LEASE: Duration = Duration::from_millis(150);

/// How the cut-off leader answered one request for an id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Probe {
    /// 200, with ids.
    Issued,
    /// An answer that refuses: its HTTP status and error code.
    Refused(u16, String),
    /// No answer: the connection failed, or nothing came within the probe's timeout.
    Unreachable(String),
}

/// Asks `url` for one id; waits longer than the node takes to give up on a leader it cannot
/// reach (5 s), so that a slow refusal is not taken for no answer.
async fn probe(http: &reqwest::Client, url: &str) -> Probe {
    let resp = match http.get(url).timeout(Duration::from_secs(8)).send().await {
        Ok(resp) => resp,
        Err(e) => return Probe::Unreachable(e.to_string()),
    };
    let status = resp.status().as_u16();
    if status == 200 {
        return Probe::Issued;
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("(none)")
        .to_string();
    Probe::Refused(status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_partition() {
    let all = [1, 2, 3];
    let options = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .cores(&all)
        .options(options)
        .launch()
        .await;
    let (leader, _) = cluster.wait_leader(&all, Duration::from_secs(1)).await;
    let workload = Workload::start(&cluster, 4);
    cluster
        .wait_for("ids to flow", Duration::from_secs(20), || async {
            (workload.served() > 100).then_some(())
        })
        .await;

    // Probe the old leader directly over HTTP: it must stop handing out ids within its lease,
    // and then refuse (the test process still reaches it: the partition cuts only the nodes'
    // links to each other).
    let http = gru_testkit::admin_http();
    let url = format!("http://{}/api/v1/ids?count=1", cluster.admin_addr(leader));
    assert_eq!(probe(&http, &url).await, Probe::Issued, "before the cut");

    let cut = Instant::now();
    cluster.partition(leader);
    let mut seen = Vec::new();
    while cut.elapsed() < Duration::from_secs(3) {
        let sent = cut.elapsed();
        seen.push((sent, probe(&http, &url).await));
        // Probing pace: one request at a time, 10 ms apart (a refusal takes the node 1.5 s).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last_issued = seen
        .iter()
        .rev()
        .find(|(_, p)| *p == Probe::Issued)
        .map(|(sent, _)| *sent);
    eprintln!(
        "partitioned leader {leader}: last id it handed out to a request sent {last_issued:?} \
         after the cut; then {:?}",
        seen.iter()
            .filter(|(sent, _)| Some(*sent) > last_issued)
            .map(|(_, p)| p)
            .collect::<std::collections::BTreeSet<_>>()
    );
    if let Some(after) = last_issued {
        assert!(
            after <= LEASE,
            "the cut-off leader issued ids {after:?} after the cut (lease {LEASE:?})"
        );
    }
    for (sent, answer) in seen.iter().filter(|(sent, _)| Some(*sent) > last_issued) {
        assert_eq!(
            *answer,
            Probe::Refused(503, "unavailable".into()),
            "the cut-off leader, {sent:?} after the cut"
        );
    }
    assert!(
        seen.last().is_some_and(|(_, p)| *p != Probe::Issued),
        "the cut-off leader was never seen refusing: {seen:?}"
    );

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
