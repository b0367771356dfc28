//! `redis_restart`: kill Redis mid-traffic and start it again. While it is down, senders get
//! error 1001 with `localOnly` (their message reached this spear's recipients only) and the
//! stat API answers 503; no spear restarts; once it is back, delivery across spears resumes by
//! itself, every message acknowledged as relayed is delivered exactly once, and presence is
//! rebuilt from the spears' own rosters (the restarted Redis is empty).

use std::time::Duration;

use crate::harness::{
    connect, get_json, relay_counter, spear_cluster, wait_group_stat, Relayed, STAT,
};
use gru_testkit::ClusterOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart() {
    let mut cluster = spear_cluster(&[1, 2], ClusterOptions::default()).await;
    let alice = connect(&cluster, 1, 401).await;
    let mut bob = connect(&cluster, 2, 402).await;
    alice.join(50).await;
    bob.join(50).await;
    wait_group_stat(&cluster, 50, &[401, 402], Duration::from_secs(10)).await;

    // Every message acknowledged as relayed must reach Bob.
    let mut relayed = Relayed::default();
    for _ in 0..20 {
        let ack = relayed.send(&alice, 0, 402).await;
        assert_eq!(ack["success"], true, "{ack}");
    }

    cluster.redis().expect("the harness's Redis").kill();
    // Senders learn it: error 1001, delivered locally only.
    relayed
        .until_refused(&alice, (1, 50), "Redis", Duration::from_secs(10))
        .await;
    let (status, body) = get_json(&cluster, STAT, "/getGroupStat?groupId=50")
        .await
        .expect("stat answers");
    assert_eq!(status, 503, "{body}");
    for _ in 0..10 {
        let ack = relayed.send(&alice, 0, 402).await;
        assert_eq!(ack["errorCode"], 1001, "still down: {ack}");
        // Pace of a watch over half a second: refused every time while Redis is down.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.redis().expect("the harness's Redis").restart();
    // Delivery resumes by itself: keep sending until the relay accepts again.
    let back = relayed
        .until_taken(&alice, 402, Duration::from_secs(20))
        .await;
    eprintln!("relay accepted messages again {back:?} after Redis restarted");
    for _ in 0..50 {
        let ack = relayed.send(&alice, 0, 402).await;
        assert_eq!(ack["success"], true, "after recovery: {ack}");
    }

    // Bob got every relayed message exactly once (and possibly none of the refused ones).
    relayed
        .delivered_once(&mut bob, Duration::from_secs(5))
        .await;

    // Presence is rebuilt from the spears' rosters; nobody restarted.
    wait_group_stat(&cluster, 50, &[401, 402], Duration::from_secs(10)).await;
    assert_eq!(cluster.running(), [1, 2, 3], "no node restarted or died");
    for node in [1, 2] {
        assert!(
            relay_counter(&cluster, node, "outages").await >= 1,
            "spear {node} saw the outage"
        );
        assert!(
            !cluster.log(node).contains("panicked"),
            "node {node} panicked"
        );
    }
}
