//! `rolling_restart`: every node — the three cores, then both spears — is stopped and started
//! again, one at a time, while clients exchange messages. The clients of a spear that stops move
//! through ticket to the other spear and resume; so do clients a spear cut while it was out of
//! the cluster (a core restart can outlast its lease on a loaded machine). Message ids stay
//! strictly increasing in real time across the leader changes, messages are acknowledged while
//! each spear is away, the delivery checker is clean, and no client is away longer than its own
//! reconnect.

use std::time::{Duration, Instant};

use crate::scenario::{
    restart_core, through_ticket, two_spears, wait_handed_out, wait_spears, Crowd, SPEARS,
};
use gru_testkit::{history, ClusterOptions};

const CLIENTS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart() {
    let mut cluster = two_spears(ClusterOptions::default(), |_| {}).await;
    let mut crowd = Crowd::on_two_spears(&cluster, CLIENTS, 3000).await;
    crowd.start_traffic(2);
    crowd.wait_acked(100).await;

    for core in [1, 2, 3] {
        restart_core(&mut cluster, core).await;
        let back = crowd.reconnect_cut(&cluster, &SPEARS).await;
        eprintln!("core {core} restarted; {back} clients cut meanwhile came back");
    }

    let mut longest = Duration::ZERO;
    let mut away = Vec::new();
    for spear in SPEARS {
        // Its own clients, and those that moved to it when the other spear stopped.
        let moving = crowd.on_spear(spear).await;
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
                    (ticket_node, &SPEARS, Some(spear)),
                    checker,
                    Duration::from_secs(30),
                )
                .await;
                stopped.elapsed()
            }
        }))
        .await;
        longest = longest.max(outages.into_iter().max().unwrap_or_default());
        let staying = crowd.clients.len() - moving.len();
        away.push((spear, staying, stopped, Instant::now()));
        cluster.restart(spear);
        wait_spears(&cluster, 2).await;
        eprintln!(
            "spear {spear} restarted; its {} clients moved",
            moving.len()
        );
        // The clients of the next spear to stop come back to one that is up: the one just
        // restarted, once every ticket node hands it out again.
        wait_handed_out(&cluster, &[1, 2, 3], spear).await;
    }

    // Traffic on the final placement.
    crowd.wait_acked(100).await;
    let late = crowd.reconnect_cut(&cluster, &SPEARS).await;
    let ops = crowd.stop_traffic().await;
    let ids = history::check_strict(&ops).unwrap_or_else(|e| panic!("message ids: {e}"));
    for (spear, staying, from, to) in away {
        let during = ops
            .iter()
            .filter(|o| o.sent >= from && o.sent <= to)
            .count();
        eprintln!(
            "while spear {spear} was away: {during} messages acked ({staying} clients on the other)"
        );
        // The other spear's clients go on sending while this one's move.
        assert!(
            staying == 0 || during > 0,
            "no message acked while spear {spear} was away"
        );
    }
    let report = crowd.checker.lock().expect("checker").verify();
    eprintln!(
        "rolling_restart: {ids} acked message ids strictly increasing in real time; the longest \
         a spear's client was away: {longest:?} (from the stop, which waits out the spear's drain, to resumed); \
         {late} clients cut after the moves came back at the end\n{report}"
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
