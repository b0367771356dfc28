//! `spear_kill_resume`: 200 clients over 3 spears exchange unicast and group messages; one spear
//! is killed (-9) mid-traffic; its clients get a new spear from ticket and resume with their
//! last positions. The checker proves every acknowledged message reached every recipient
//! exactly once, in channel order; the longest client outage is printed.

use std::time::Instant;

use crate::scenario::{history_counter, three_spears, Crowd};
use gru_testkit::ClusterOptions;

const CLIENTS: u64 = 200;
const GROUPS: u64 = 10;
const VICTIM: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_kill_resume() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let mut crowd = Crowd::connect(
        &cluster,
        CLIENTS,
        |uid| 1000 + uid % GROUPS,
        |uid| uid % 3 + 1,
        &[1, 2, 3],
    )
    .await;
    crowd.start_traffic(3);
    crowd.wait_acked(150).await;

    cluster.kill(VICTIM);
    let killed = Instant::now();
    let (moving, outages) = crowd.move_off(&cluster, VICTIM, killed).await;
    // Traffic on the new placement, then quiet.
    crowd.wait_acked(150).await;
    let acked = crowd.stop_traffic().await.len();

    for i in &moving {
        let c = crowd.clients[*i].lock().await;
        assert!(
            c.spear != VICTIM && c.spear != 0,
            "user {} is on spear {}",
            c.uid,
            c.spear
        );
    }
    let longest = outages.iter().max().copied().unwrap_or_default();
    let replayed = history_counter(&cluster, &[1, 2], "replayed").await;
    let report = crowd.checker.lock().expect("checker").verify();
    eprintln!(
        "spear_kill_resume: {} clients moved off spear {VICTIM}; longest outage {longest:?} \
         (kill to resumed); {acked} acked; {replayed} messages replayed on resume\n{report}",
        moving.len()
    );
    assert!(
        acked > 100,
        "too little traffic to prove anything: {acked} acked"
    );
    assert!(
        replayed > 0,
        "the moved clients missed nothing, so resume was not exercised"
    );
    assert!(
        report.is_clean(),
        "{report}\n{}",
        crowd.checker.lock().expect("checker").stories(&report)
    );
}
