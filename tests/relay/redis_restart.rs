//! `redis_restart`: kill Redis mid-traffic and start it again. While it is down, senders get
//! error 1001 with `localOnly` (their message reached this spear's recipients only) and the
//! stat API answers 503; no spear restarts; once it is back, delivery across spears resumes by
//! itself, every message acknowledged as relayed is delivered exactly once, and presence is
//! rebuilt from the spears' own rosters (the restarted Redis is empty).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{
    connect, drain, get_json, relay_counter, send, spear_cluster, wait_group_stat, STAT,
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

    // Every message acknowledged as relayed must reach Bob; remember their ids.
    let mut relayed = BTreeSet::new();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        format!("m{seq}")
    };
    for _ in 0..20 {
        let ack = send(&alice, 0, 402, &next()).await;
        assert_eq!(ack["success"], true, "{ack}");
        relayed.insert(ack["data"]["id"].as_u64().expect("id"));
    }

    cluster.redis().expect("the harness's Redis").kill();
    let down = Instant::now();
    // Senders learn it: error 1001, delivered locally only.
    let refusal = loop {
        let ack = send(&alice, 1, 50, &next()).await;
        if ack["success"] == true {
            relayed.insert(ack["data"]["id"].as_u64().expect("id"));
        } else {
            break ack;
        }
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "no error while Redis is down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refusal["errorCode"], 1001, "{refusal}");
    assert_eq!(refusal["data"]["localOnly"], true, "{refusal}");
    assert!(
        refusal["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("relay unavailable"),
        "{refusal}"
    );
    let (status, body) = get_json(&cluster, STAT, "/getGroupStat?groupId=50")
        .await
        .expect("stat answers");
    assert_eq!(status, 503, "{body}");
    for _ in 0..10 {
        let ack = send(&alice, 0, 402, &next()).await;
        assert_eq!(ack["errorCode"], 1001, "still down: {ack}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.redis().expect("the harness's Redis").restart();
    let back = Instant::now();
    // Delivery resumes by itself: keep sending until the relay accepts again.
    loop {
        let ack = send(&alice, 0, 402, &next()).await;
        if ack["success"] == true {
            relayed.insert(ack["data"]["id"].as_u64().expect("id"));
            break;
        }
        assert_eq!(ack["errorCode"], 1001, "{ack}");
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "relay did not come back: {ack}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "relay accepted messages again {:?} after Redis restarted",
        back.elapsed()
    );
    for _ in 0..50 {
        let ack = send(&alice, 0, 402, &next()).await;
        assert_eq!(ack["success"], true, "after recovery: {ack}");
        relayed.insert(ack["data"]["id"].as_u64().expect("id"));
    }

    // Bob got every relayed message exactly once (and possibly none of the refused ones).
    let got = drain(&mut bob, Duration::from_millis(800)).await;
    let ids: Vec<u64> = got.iter().filter_map(|m| m["id"].as_u64()).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message delivered twice");
    let lost: Vec<&u64> = relayed.difference(&unique).collect();
    assert!(lost.is_empty(), "acknowledged but not delivered: {lost:?}");

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
