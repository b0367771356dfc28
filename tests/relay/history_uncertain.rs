//! `history_uncertain`: Redis holds a message's history append past `redis.timeout_ms`
//! (`CLIENT PAUSE … WRITE`), then runs it. The sender is told the outcome is unknown (1001,
//! `uncertain`) and nobody gets the message live; once Redis has stored it, the channel's next
//! message makes every spear fill the gap from the history, so each member gets it exactly
//! once, at its position — on the sender's spear too. (A live copy without a position, which
//! an uncertain append used to get, arrived there a second time from the gap fill or from a
//! resume on another spear.)

use std::time::Duration;

use serde_json::Value;

use crate::harness::{connect, drain, send, spear_cluster, wait_group_stat};
use gru_testkit::{wait_for, ClusterOptions};

const GROUP: u64 = 70;
/// A user nobody connects as.
const NOBODY: u64 = 799;
/// Longer than `redis.timeout_ms` (1 s by default): the append's answer comes too late.
const PAUSE_MS: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_uncertain() {
    let mut cluster = spear_cluster(&[1, 2], ClusterOptions::default()).await;
    let alice = connect(&cluster, 1, 701).await;
    let mut carol = connect(&cluster, 1, 703).await;
    let mut bob = connect(&cluster, 2, 702).await;
    for c in [&alice, &carol, &bob] {
        c.join(GROUP).await;
    }
    wait_group_stat(&cluster, GROUP, &[701, 702, 703], Duration::from_secs(10)).await;
    let before = send(&alice, 1, GROUP, "before").await;
    assert_eq!(before["success"], true, "{before}");
    let p0 = before["data"]["position"].as_u64().expect("a position");

    // Redis holds every write (the append script included) for PAUSE_MS.
    let paused = cluster.redis().expect("the harness's Redis").cmd(&[
        "CLIENT",
        "PAUSE",
        &PAUSE_MS.to_string(),
        "WRITE",
    ]);
    assert_eq!(paused.as_deref().map(str::trim), Some("OK"), "{paused:?}");
    let held = std::time::Instant::now();
    let uncertain = send(&alice, 1, GROUP, "uncertain").await;
    assert_eq!(uncertain["errorCode"], 1001, "{uncertain}");
    assert_eq!(uncertain["data"]["uncertain"], true, "{uncertain}");
    assert_eq!(uncertain["data"]["localOnly"], false, "{uncertain}");
    let id = uncertain["data"]["id"].as_u64().expect("an id");
    // Nobody gets it live, on the sender's spear or elsewhere.
    let mut early = Vec::new();
    for (name, c) in [("carol", &mut carol), ("bob", &mut bob)] {
        let got = drain(c, Duration::from_millis(300)).await;
        assert!(
            got.iter().all(|m| m["content"] == "before"),
            "{name} got something live during the pause: {got:?}"
        );
        early.push(got);
    }

    // The pause ends and Redis runs the held append: the channel's head moves to p0 + 1.
    let redis = cluster.redis().expect("the harness's Redis");
    let hash = redis
        .cmd(&["--scan", "--pattern", &format!("*hmeta:{{g:{GROUP}}}")])
        .map(|keys| keys.trim().to_string())
        .expect("the group's history hash");
    let head = (p0 + 1).to_string();
    let redis = &*redis;
    wait_for(
        "the held append to run",
        Duration::from_secs(20).saturating_sub(held.elapsed()),
        || async {
            let p = redis.cmd(&["HGET", &hash, "p"]);
            (p.as_deref().map(str::trim) == Some(head.as_str())).then_some(())
        },
    )
    .await;
    // The held answer came late, so the link counts an outage and the relay refuses for
    // `redis.settle_ms` (messages it refuses are still in the history): probe it on a channel
    // nobody is in until it takes messages again, then send the group one.
    wait_for(
        "the relay to take a message again",
        Duration::from_secs(20).saturating_sub(held.elapsed()),
        || async { (send(&alice, 0, NOBODY, "probe").await["success"] == true).then_some(()) },
    )
    .await;
    let after = send(&alice, 1, GROUP, "after").await;
    assert_eq!(after["success"], true, "{after}");
    assert_eq!(
        after["data"]["position"].as_u64(),
        Some(p0 + 2),
        "the held append ran and took p0 + 1: {after}"
    );

    for ((name, c), early) in [("carol", &mut carol), ("bob", &mut bob)]
        .into_iter()
        .zip(early)
    {
        // Everything since "before", the pause included.
        let got: Vec<Value> = early
            .into_iter()
            .chain(drain(c, Duration::from_millis(1500)).await)
            .filter(|m| m["content"] != "before")
            .collect();
        let contents: Vec<&str> = got.iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(
            contents,
            ["uncertain", "after"],
            "{name}: the held message once, from the history, then the next: {got:?}"
        );
        assert_eq!(got[0]["id"].as_u64(), Some(id), "{name}: {got:?}");
        assert_eq!(got[0]["position"].as_u64(), Some(p0 + 1), "{name}: {got:?}");
        assert_eq!(got[1]["position"].as_u64(), Some(p0 + 2), "{name}: {got:?}");
    }
}
