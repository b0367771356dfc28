//! `idgen_leader_kill`: 8 clients (4 of them through the spears' streaming client) request ids
//! without pause while the leader is killed -9 and restarted 10 times. The history checker finds no id twice and no real-time order
//! violation; the longest stretch without any id served around each kill is under 2 s.

use std::time::{Duration, Instant};

use crate::workload::Workload;
use gru_testkit::history::{check_strict, longest_gap};
use gru_testkit::{TestCluster, CORES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_leader_kill() {
    let (mut cluster, _, _) = TestCluster::three_cores(gru_testkit::gru()).await;

    let workload = Workload::start(&cluster, 8);
    cluster
        .wait_for("ids to flow", Duration::from_secs(20), || async {
            (workload.served() > 100).then_some(())
        })
        .await;

    let mut kills = Vec::new();
    for round in 1..=10 {
        let (leader, _) = cluster.wait_leader(&CORES, Duration::from_secs(20)).await;
        kills.push(Instant::now());
        cluster.kill(leader);
        let survivors: Vec<u64> = CORES.iter().copied().filter(|id| *id != leader).collect();
        cluster
            .wait_leader(&survivors, Duration::from_secs(20))
            .await;
        cluster.restart(leader);
        cluster
            .wait_converged(&CORES, Duration::from_secs(20))
            .await;
        let before = workload.served();
        cluster
            .wait_for(
                &format!("ids to flow after round {round}"),
                Duration::from_secs(20),
                || async { (workload.served() > before + 100).then_some(()) },
            )
            .await;
    }
    let end = Instant::now();
    let via = workload.stream_counts();
    let ops = workload.finish().await;
    eprintln!(
        "stream clients: {} requests over the stream, {} as single RPCs",
        via.streamed, via.unary
    );
    // The stream carries the traffic, and each kill sends its clients back to the RPC, which
    // finds the new leader (the history check below covers both ways).
    assert!(via.streamed > via.unary, "the stream was not used: {via:?}");
    assert!(via.unary >= 10, "no fallback after the kills: {via:?}");

    let checked = check_strict(&ops).unwrap_or_else(|e| panic!("history check failed: {e}"));
    eprintln!(
        "{} requests, {checked} ids: no duplicate, real-time order holds",
        ops.len()
    );
    let gaps: Vec<Duration> = kills
        .iter()
        .enumerate()
        .map(|(i, start)| longest_gap(&ops, *start, kills.get(i + 1).copied().unwrap_or(end)))
        .collect();
    for (i, gap) in gaps.iter().enumerate() {
        eprintln!("kill {}: longest stretch with no id served {gap:?}", i + 1);
    }
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            *gap < Duration::from_secs(2),
            "kill {}: no id served for {gap:?}",
            i + 1
        );
    }
}
