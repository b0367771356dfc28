//! `rolling_restart`: every node — the three cores, then both spears — is stopped and started
//! again, one at a time, while clients exchange messages. The clients of a spear that stops move
//! through ticket to the other spear and resume. Message ids stay strictly increasing in real
//! time across the leader changes, the delivery checker is clean, and no client is away longer
//! than its own reconnect.

use std::time::{Duration, Instant};

use crate::scenario::{through_ticket, two_spears, wait_spears, Crowd, SPEARS};
use gru_testkit::{history, ClusterOptions};

const CLIENTS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart() {
    let mut cluster = two_spears(ClusterOptions::default(), |_| {}).await;
    let mut crowd = Crowd::connect(
        &cluster,
        CLIENTS,
        |uid| 3000 + uid % 4,
        |uid| SPEARS[(uid % 2) as usize],
        &SPEARS,
    )
    .await;
    crowd.start_traffic(2);
    tokio::time::sleep(Duration::from_secs(2)).await;

    for core in [1, 2, 3] {
        assert!(cluster.stop(core), "core {core} stops cleanly");
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(core);
        cluster
            .wait_leader(&[1, 2, 3], Duration::from_secs(30))
            .await;
        wait_spears(&cluster, 2).await;
        eprintln!("core {core} restarted");
    }

    let mut longest = Duration::ZERO;
    for spear in SPEARS {
        let moving: Vec<usize> = (0..crowd.clients.len())
            .filter(|i| SPEARS[((*i as u64 + 1) % 2) as usize] == spear)
            .collect();
        let stopped = Instant::now();
        // Its clients are told (server_shutdown) and cut; each goes back through ticket.
        assert!(cluster.stop(spear), "spear {spear} stops cleanly");
        let outages: Vec<Duration> = futures_util::future::join_all(moving.iter().map(|i| {
            let (cluster, clients, checker) = (&cluster, &crowd.clients, &crowd.checker);
            async move {
                let ticket_node = [1, 2, 3][*i % 3];
                through_ticket(
                    cluster,
                    &clients[*i],
                    (ticket_node, &SPEARS, spear),
                    checker,
                    Duration::from_secs(30),
                )
                .await;
                stopped.elapsed()
            }
        }))
        .await;
        longest = longest.max(outages.into_iter().max().unwrap_or_default());
        cluster.restart(spear);
        wait_spears(&cluster, 2).await;
        eprintln!(
            "spear {spear} restarted; its {} clients moved",
            moving.len()
        );
        // The clients of the next spear to stop come back to one that is up: the one just
        // restarted is placed again once both are registered.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let ops = crowd.stop_traffic().await;
    let ids = history::check_strict(&ops).unwrap_or_else(|e| panic!("message ids: {e}"));
    let report = crowd.checker.lock().expect("checker").verify();
    eprintln!(
        "rolling_restart: {ids} acked message ids strictly increasing in real time; the longest \
         a spear's client was away: {longest:?} (from the stop, which waits out the spear's drain, to resumed)\n{report}"
    );
    assert!(ops.len() > 100, "too little traffic: {}", ops.len());
    assert!(
        longest < Duration::from_secs(10),
        "a client was away for {longest:?}"
    );
    assert!(
        report.is_clean(),
        "{report}\n{}",
        crowd.checker.lock().expect("checker").stories(&report)
    );
}
