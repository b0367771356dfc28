//! `ticket_discovery`: a ticket-only node learns spears from the Raft registry and their
//! liveness and load from gossip. A new spear is handed out within 2 s of starting; a killed
//! spear stops being handed out within 2 s of gossip detecting its death and never after its
//! lease ended; a spear whose gossiped load is over the bounded-load cap gets no new users.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use gru_testkit::sio::SioClient;
use gru_testkit::tokens::token1;
use gru_testkit::{TestCluster, LEASE_TTL_MS};

const USERS: u64 = 40;

/// Whether ticket node 6 placed every test user (so that "none on spear X" is not said of an
/// empty answer), and each on a spear that `ok` accepts.
async fn all_placed(cluster: &TestCluster, ok: impl Fn(&str) -> bool) -> bool {
    let placed = placements(cluster).await;
    placed.len() == USERS as usize && placed.values().all(|a| ok(a))
}

/// Which spear (by socket.io port) ticket node 6 hands each test user.
async fn placements(cluster: &TestCluster) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    for uid in 1..=USERS {
        let url = format!(
            "http://{}/ticket?userId={uid}&userName=u{uid}&appType=web&token1={}",
            cluster.http_addr(6),
            token1(uid, &format!("u{uid}"))
        );
        if let Ok(resp) = reqwest::get(&url).await {
            if let Ok(body) = resp.json::<Value>().await {
                if let Some(addr) = body["data"]["addr"].as_str() {
                    out.insert(uid, addr.to_string());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_discovery() {
    let mut cluster = TestCluster::builder()
        .cores(&[1, 2, 3])
        .spears(&[4, 5])
        .node(6, &["ticket"])
        .build();
    for id in [1, 2, 3, 6] {
        cluster.start(id);
    }
    cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    let url = |id: u64| format!("http://127.0.0.1:{}", cluster.ports(id).sio);
    let (url4, url5) = (url(4), url(5));

    for (spear, spear_url) in [(4, &url4), (5, &url5)] {
        let started = Instant::now();
        cluster.start(spear);
        cluster
            .wait_for(
                &format!("spear {spear} to be handed out"),
                Duration::from_secs(20),
                || async {
                    placements(&cluster)
                        .await
                        .values()
                        .any(|a| a == spear_url)
                        .then_some(())
                },
            )
            .await;
        let took = started.elapsed();
        eprintln!("spear {spear} handed out {took:?} after its process started");
        assert!(
            took <= Duration::from_secs(2),
            "spear {spear} took {took:?} to be handed out"
        );
    }

    // Load: 30 connections on spear 4 put it over ⌈1.25 × 31 / 2⌉ = 20; new users go to 5.
    let port4 = cluster.ports(4).sio;
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(
            SioClient::connect(&format!("127.0.0.1:{port4}"), None)
                .await
                .expect("connect"),
        );
    }
    cluster
        .wait_for(
            "gossip to report spear 4's load",
            Duration::from_secs(20),
            || async { all_placed(&cluster, |a| a == url5).await.then_some(()) },
        )
        .await;
    drop(held);
    cluster
        .wait_for(
            "spear 4 to be handed out again once idle",
            Duration::from_secs(20),
            || async {
                placements(&cluster)
                    .await
                    .values()
                    .any(|a| a == &url4)
                    .then_some(())
            },
        )
        .await;

    // Death: kill -9 spear 5 and watch both gossip's verdict and ticket's answers.
    let before = placements(&cluster).await;
    let users_of_5: Vec<u64> = before
        .iter()
        .filter(|(_, a)| **a == url5)
        .map(|(u, _)| *u)
        .collect();
    assert!(!users_of_5.is_empty(), "some users were placed on spear 5");
    cluster.kill(5);
    let killed = Instant::now();
    // Gossip declares a silent member dead after `gossip.dead_after_ms` (800 ms by default),
    // well within the lease; both must be seen before the deadline.
    let deadline = Duration::from_millis(LEASE_TTL_MS + 3000);
    let mut detected = None;
    let mut stopped = None;
    while killed.elapsed() < deadline && (detected.is_none() || stopped.is_none()) {
        if detected.is_none() && cluster.log(6).contains("gossip: spear is dead") {
            detected = Some(killed.elapsed());
        }
        if stopped.is_none() && all_placed(&cluster, |a| a != url5).await {
            stopped = Some(killed.elapsed());
        }
        // Polling pace: each round asks ticket for every test user.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("spear 5 killed: gossip detected its death after {detected:?}, ticket stopped handing it out after {stopped:?}");
    let stopped =
        stopped.unwrap_or_else(|| panic!("spear 5 still handed out {deadline:?} after the kill"));
    let detected = detected.unwrap_or_else(|| {
        panic!("node 6's gossip did not report spear 5 dead within {deadline:?} of the kill")
    });
    assert!(
        stopped <= Duration::from_millis(LEASE_TTL_MS),
        "handed out {stopped:?} after the kill, past its lease"
    );
    assert!(
        stopped <= detected + Duration::from_secs(2),
        "handed out {stopped:?} after the kill, more than 2 s after gossip saw it die ({detected:?})"
    );
    let after = placements(&cluster).await;
    for (uid, addr) in &before {
        if *addr == url4 {
            assert_eq!(
                after.get(uid),
                Some(addr),
                "user {uid} on the surviving spear stays put"
            );
        }
    }
}
