//! `spear_kill_while_redis_down`: Redis (relay and history) dies mid-traffic, then a spear is
//! killed (-9) while it is still down; the spear's clients come back through ticket onto the
//! other spears and resume while nothing can be read (each told `resync` `unavailable`), and
//! Redis comes back empty, so every channel starts a new epoch. The checker proves that every
//! acknowledged message reached every recipient once and in order, or was excused by a
//! resync, and that every client heard of every epoch change of its channels.

use std::time::{Duration, Instant};

use crate::fleet::{self, Sent};
use crate::scenario::{three_spears, Crowd};
use gru_testkit::ClusterOptions;
use serde_json::Value;

const CLIENTS: u64 = 60;
const GROUPS: u64 = 6;
const VICTIM: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_kill_while_redis_down() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let mut crowd = Crowd::connect(
        &cluster,
        CLIENTS,
        |uid| 4000 + uid % GROUPS,
        |uid| uid % 3 + 1,
        &[1, 2, 3],
    )
    .await;
    crowd.start_traffic(2);
    crowd.wait_acked(100).await;

    cluster.redis().expect("the cluster's Redis").kill();
    // Every spear knows Redis is down before one of them dies.
    for spear in [1, 2, 3] {
        cluster
            .wait_for(
                &format!("spear {spear} to see Redis down"),
                Duration::from_secs(10),
                || async {
                    let report: Value = cluster
                        .get(spear, "/api/v1/relay")
                        .await?
                        .json()
                        .await
                        .ok()?;
                    (report["connected"] == false).then_some(())
                },
            )
            .await;
    }
    cluster.kill(VICTIM);
    let (moving, _) = crowd.move_off(&cluster, VICTIM, Instant::now()).await;
    let unavailable = crowd.checker.lock().expect("checker").verify().resyncs;

    cluster.redis().expect("the cluster's Redis").restart();
    let back = Instant::now();
    let probe = crowd.clients[0]
        .lock()
        .await
        .conn()
        .expect("user 1 is online");
    cluster
        .wait_for(
            "a message acknowledged after Redis came back",
            Duration::from_secs(30),
            || async {
                let sent =
                    fleet::send(&probe, (1, 4001), "after", &crowd.members, &crowd.checker).await;
                matches!(sent, Sent::Acked(_)).then_some(())
            },
        )
        .await;
    eprintln!(
        "acknowledged again {:?} after Redis restarted",
        back.elapsed()
    );
    // Traffic in the channels' new epochs.
    crowd.wait_acked(100).await;
    let acked = crowd.stop_traffic().await.len();

    let report = crowd.checker.lock().expect("checker").verify();
    eprintln!(
        "spear_kill_while_redis_down: {} clients moved off spear {VICTIM} while Redis was down \
         ({unavailable} resyncs by then); {acked} acked\n{report}",
        moving.len()
    );
    assert!(acked > 50, "too little traffic: {acked}");
    assert!(
        unavailable > 0,
        "no client was told that its backlog could not be read"
    );
    assert!(
        report.is_clean(),
        "{report}\n{}",
        crowd.checker.lock().expect("checker").stories(&report)
    );
}
