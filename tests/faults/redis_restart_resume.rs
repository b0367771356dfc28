//! `redis_restart_resume`: Redis (relay and history) is killed mid-traffic and started again
//! empty. While it is down senders get error 1001 naming Redis; the clients that were offline
//! meanwhile come back with their old positions and get a `resync` for every one of their
//! channels (its history is gone: a new epoch), never a replay that claims continuity; the
//! clients that stayed get a `resync` from their room when their channel's new epoch begins;
//! everything acknowledged after Redis returned is delivered exactly once, in order.

use std::time::{Duration, Instant};

use crate::fleet::{self, Membership, Sent};
use crate::scenario::{three_spears, Crowd};
use gru_testkit::tokens::spear_token;
use gru_testkit::ClusterOptions;

const CLIENTS: u64 = 60;
const GROUPS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_resume() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let mut crowd = Crowd::connect(
        &cluster,
        CLIENTS,
        |uid| 2000 + uid % GROUPS,
        |uid| uid % 3 + 1,
        &[1, 2, 3],
    )
    .await;
    crowd.start_traffic(2);
    let (clients, members, checker) = (
        crowd.clients.clone(),
        crowd.members.clone(),
        crowd.checker.clone(),
    );
    crowd.wait_acked(100).await;

    // The clients of spear 2 go offline, then Redis dies.
    let offline: Vec<usize> = (0..clients.len())
        .filter(|i| (*i as u64 + 1) % 3 + 1 == 2)
        .collect();
    for i in &offline {
        clients[*i].lock().await.disconnect().await;
    }
    let epochs_before = checker.lock().expect("checker").verify().delivered;
    assert!(epochs_before > 0, "nothing was delivered before the outage");
    cluster.redis().expect("the cluster's Redis").kill();
    let down = Instant::now();

    // Senders are told: error 1001, naming Redis.
    // User 3 is on spear 1, which stays up.
    let probe = clients[2].lock().await.conn().expect("user 3 is online");
    let refusal = loop {
        let content = "during-the-outage";
        let payload =
            serde_json::json!({"type": 1, "target": {"id": 2001, "type": 1}, "content": content});
        let ack = probe
            .call("msg", &serde_json::Value::String(payload.to_string()))
            .await
            .expect("an answer");
        if ack["success"] != true {
            break ack;
        }
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "no error while Redis is down"
        );
        checker.lock().expect("checker").acked(
            gru_testkit::delivery::Message::parse(&ack["data"]).expect("ack"),
            members_of(&members, 2001),
        );
        // Pace of the probe until the refusal comes (within the deadline above).
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    checker
        .lock()
        .expect("checker")
        .refused(refusal["data"]["id"].as_u64());
    assert_eq!(refusal["errorCode"], 1001, "{refusal}");
    let msg = refusal["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("unavailable") && msg.contains("Redis"),
        "{refusal}"
    );
    // The outage lasts a second (the thing under test), with the traffic refused meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.redis().expect("the cluster's Redis").restart();
    // Acknowledged again once the spears have resubscribed.
    let back = Instant::now();
    cluster
        .wait_for(
            "a message acknowledged after Redis came back",
            Duration::from_secs(30),
            || async {
                let sent = fleet::send(&probe, (1, 2001), "after", &members, &checker).await;
                matches!(sent, Sent::Acked(_)).then_some(())
            },
        )
        .await;
    eprintln!(
        "acknowledged again {:?} after Redis restarted",
        back.elapsed()
    );
    // The channels' new epochs begin before the offline clients come back.
    crowd.wait_acked(50).await;

    // The offline clients come back with their old positions.
    let mut presented = 0;
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let spear2 = cluster.sio_addr(2);
    for i in &offline {
        let mut c = clients[*i].lock().await;
        presented += c.positions().len();
        let uid = c.uid;
        c.connect(2, &spear2, &spear_token(uid, vec![1, 2, 3], exp), &checker)
            .await
            .unwrap_or_else(|e| panic!("user {uid}: {e}"));
    }
    // Traffic with them back.
    crowd.wait_acked(50).await;
    let acked = crowd.stop_traffic().await.len();

    let report = checker.lock().expect("checker").verify();
    eprintln!(
        "redis_restart_resume: {acked} acked by the senders; {} clients came back presenting \
         {presented} positions\n{report}",
        offline.len()
    );
    assert!(acked > 50, "too little traffic: {acked}");
    // Every position presented was of a lost history: each got its resync.
    assert!(
        report.resyncs >= presented,
        "{presented} positions presented after the restart, only {} resyncs",
        report.resyncs
    );
    assert!(
        report.is_clean(),
        "{report}\n{}",
        crowd.checker.lock().expect("checker").stories(&report)
    );
}

fn members_of(members: &Membership, gid: u64) -> Vec<gru_testkit::delivery::ClientKey> {
    members.recipients(1, gid)
}
