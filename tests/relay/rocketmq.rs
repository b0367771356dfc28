//! Whole nodes with `relay.kind = "rocketmq"`, against a real name server and broker that the
//! tests start (`gru_testkit::rocketmq`), kill and restart, and a private `redis-server` for
//! the routes and presence:
//!
//! - `relay_rocketmq_cross_node`: the cross-node journey of `cross_node.rs` (unicast both ways,
//!   a group broadcast, `online` and the stat API), then the Node end-to-end test with the
//!   official clients (`tests/e2e/relay.test.js`) on a cluster of its own;
//! - `relay_rocketmq_targeting`: three spears; the relayed-message counts of each show that a
//!   spear receives only what its users and groups need;
//! - `broker_restart`: kill -9 the broker mid-traffic and start it again: senders get error
//!   1001 while it is down, delivery resumes by itself, and every message acknowledged as
//!   relayed is delivered exactly once;
//! - `relay_rocketmq_before_the_broker`: spears start while no name server or broker runs,
//!   show the relay disconnected, and relay as soon as RocketMQ comes up;
//! - `name_server_restart`: kill -9 the name server mid-traffic and start it again: the
//!   relay keeps what it knows of the broker, so nothing acknowledged is lost and delivery
//!   goes on;
//! - `relay_rocketmq_spear_restart`: a spear stopped and started again resumes its topic
//!   where it stopped reading (the offsets it committed), so nothing it handed on before
//!   comes again.

use std::time::{Duration, Instant};

use gru_testkit::ports::free_port;
use gru_testkit::rocketmq::RocketMq;
use gru_testkit::wait_for;
use gru_testkit::{ClusterOptions, TestCluster};

use crate::harness::{connect, drain, relay_counter, relay_report, send, spear_cluster, Relayed};

fn broker() -> RocketMq {
    RocketMq::start().unwrap_or_else(|e| panic!("{e}"))
}

async fn rocketmq_cluster(spears: &[u64], mq: &RocketMq) -> TestCluster {
    let options = ClusterOptions {
        rocketmq: Some(mq.name_server()),
        ..ClusterOptions::default()
    };
    spear_cluster(spears, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rocketmq_cross_node() {
    let mq = broker();
    {
        let cluster = rocketmq_cluster(&[1, 2], &mq).await;
        crate::cross_node::journey(&cluster).await;
        for node in [1, 2] {
            let report = relay_report(&cluster, node).await;
            assert_eq!(report["kind"], "rocketmq", "{report}");
            assert_eq!(report["publish_errors"], 0, "{report}");
        }
    }

    // The official clients, on a cluster the Node harness starts, on the same broker.
    let out = gru_testkit::e2e::node_tests(
        &["relay.test.js", "resume.test.js"],
        &[("GRU_E2E_ROCKETMQ", mq.name_server())],
    );
    assert!(out.contains("RocketMQ relay"), "the RocketMQ relay ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rocketmq_targeting() {
    const ROUNDS: u64 = 30;
    let mq = broker();
    let cluster = rocketmq_cluster(&[1, 2, 3], &mq).await;
    // Alice on spear 1, Bob on spear 2, Carol on spear 3; group 70 has Alice and Bob only.
    let alice = connect(&cluster, 1, 701).await;
    let mut bob = connect(&cluster, 2, 702).await;
    let mut carol = connect(&cluster, 3, 703).await;
    alice.join(70).await;
    bob.join(70).await;

    for seq in 0..ROUNDS {
        let ack = send(&alice, 0, 702, &format!("u{seq}")).await;
        assert_eq!(ack["success"], true, "{ack}");
        let ack = send(&alice, 1, 70, &format!("g{seq}")).await;
        assert_eq!(ack["success"], true, "{ack}");
        // To a user on no spear: relayed nowhere.
        let ack = send(&alice, 0, 799, &format!("n{seq}")).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    let got = drain(&mut bob, Duration::from_millis(800)).await;
    assert_eq!(got.len() as u64, 2 * ROUNDS, "bob: {got:?}");
    assert!(drain(&mut carol, Duration::from_millis(300))
        .await
        .is_empty());

    // Spear 2 received exactly Bob's and the group's messages; spear 3, with no recipient of
    // any, received nothing; spear 1 only published.
    assert_eq!(relay_counter(&cluster, 2, "received").await, 2 * ROUNDS);
    assert_eq!(relay_counter(&cluster, 3, "received").await, 0);
    assert_eq!(relay_counter(&cluster, 1, "received").await, 0);
    assert_eq!(relay_counter(&cluster, 1, "published").await, 3 * ROUNDS);
    for node in [1, 2, 3] {
        assert_eq!(relay_counter(&cluster, node, "echoes").await, 0);
        assert_eq!(relay_counter(&cluster, node, "publish_errors").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart() {
    let mut mq = broker();
    let cluster = rocketmq_cluster(&[1, 2], &mq).await;
    let alice = connect(&cluster, 1, 801).await;
    let mut bob = connect(&cluster, 2, 802).await;
    alice.join(80).await;
    bob.join(80).await;

    // Every message acknowledged as relayed must reach Bob.
    let mut relayed = Relayed::default();
    for _ in 0..20 {
        let ack = relayed.send(&alice, 0, 802).await;
        assert_eq!(ack["success"], true, "{ack}");
    }

    mq.kill_broker();
    // Senders learn it: error 1001, delivered locally only.
    relayed
        .until_refused(&alice, (1, 80), "RocketMQ", Duration::from_secs(15))
        .await;
    for _ in 0..10 {
        let ack = relayed.send(&alice, 0, 802).await;
        assert_eq!(ack["errorCode"], 1001, "still down: {ack}");
        // Pace of a watch over half a second: refused every time while the broker is down.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = relay_report(&cluster, 1).await;
    assert_eq!(report["connected"], false, "{report}");

    mq.restart_broker();
    let back = relayed
        .until_taken(&alice, 802, Duration::from_secs(30))
        .await;
    eprintln!("relay accepted messages again {back:?} after the broker restarted");
    for _ in 0..50 {
        let ack = relayed.send(&alice, 0, 802).await;
        assert_eq!(ack["success"], true, "after recovery: {ack}");
    }

    // Bob got every relayed message exactly once.
    relayed
        .delivered_once(&mut bob, Duration::from_secs(20))
        .await;

    assert_eq!(cluster.running(), [1, 2, 3], "no node restarted or died");
    for node in [1, 2] {
        let report = relay_report(&cluster, node).await;
        assert_eq!(report["connected"], true, "{report}");
        assert!(
            !cluster.log(node).contains("panicked"),
            "node {node} panicked"
        );
    }
    assert!(
        relay_counter(&cluster, 1, "outages").await >= 1,
        "spear 1 saw the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rocketmq_before_the_broker() {
    let namesrv_port = free_port();
    let options = ClusterOptions {
        rocketmq: Some(format!("127.0.0.1:{namesrv_port}")),
        ..ClusterOptions::default()
    };
    // Nothing listens on the name server's port yet: the spears start and register all the
    // same, and say their relay is not connected.
    let cluster = spear_cluster(&[1, 2], options).await;
    for node in [1, 2] {
        wait_for(
            &format!("spear {node} to report RocketMQ unreachable"),
            Duration::from_secs(15),
            || async {
                let report = relay_report(&cluster, node).await;
                (report["connected"] == false).then_some(())
            },
        )
        .await;
    }

    let _mq = RocketMq::start_on(namesrv_port).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let alice = connect(&cluster, 1, 901).await;
    let mut bob = connect(&cluster, 2, 902).await;
    // The spears set up their topics in the background; a send is taken once they have.
    let id = loop {
        let ack = send(&alice, 0, 902, "hello").await;
        if ack["success"] == true {
            break ack["data"]["id"].as_u64().expect("id");
        }
        assert_eq!(ack["errorCode"], 1001, "{ack}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay did not come up with the broker: {ack}"
        );
        // Pace of the sends within the deadline: each one is a message the spear refuses.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("relayed {:?} after the broker started", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !got.iter().any(|m: &serde_json::Value| m["id"] == id) {
        assert!(Instant::now() < deadline, "bob never got it: {got:?}");
        got.extend(drain(&mut bob, Duration::from_millis(300)).await);
    }
    for node in [1, 2] {
        let report = relay_report(&cluster, node).await;
        assert_eq!(report["connected"], true, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rocketmq_spear_restart() {
    let mq = broker();
    let mut cluster = rocketmq_cluster(&[1, 2], &mq).await;
    let alice = connect(&cluster, 1, 951).await;
    let mut bob = connect(&cluster, 2, 952).await;
    let mut before = Relayed::default();
    for _ in 0..20 {
        let ack = before.send(&alice, 0, 952).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    before
        .delivered_once(&mut bob, Duration::from_secs(10))
        .await;

    // Spear 2 stops (SIGTERM: it commits what it read) and starts again.
    drop(bob);
    assert!(cluster.stop(2), "spear 2 exits cleanly");
    cluster.restart(2);
    cluster.wait_spears(1, 2).await;
    let mut bob = connect(&cluster, 2, 952).await;
    let mut after = Relayed::default();
    after
        .until_taken(&alice, 952, Duration::from_secs(30))
        .await;
    for _ in 0..20 {
        let ack = after.send(&alice, 0, 952).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    after
        .delivered_once(&mut bob, Duration::from_secs(10))
        .await;
    // Nothing from before the restart came again: every message bob got now is a new one.
    let again = drain(&mut bob, Duration::from_millis(500)).await;
    assert!(again.is_empty(), "{again:?}");
    let report = relay_report(&cluster, 2).await;
    assert_eq!(
        report["received"].as_u64(),
        Some(after.ids.len() as u64),
        "spear 2 received only what was sent after it started: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_restart() {
    let mut mq = broker();
    let cluster = rocketmq_cluster(&[1, 2], &mq).await;
    let alice = connect(&cluster, 1, 961).await;
    let mut bob = connect(&cluster, 2, 962).await;
    let mut relayed = Relayed::default();
    for _ in 0..10 {
        let ack = relayed.send(&alice, 0, 962).await;
        assert_eq!(ack["success"], true, "{ack}");
    }

    // Without its name server the broker still serves the routes the clients know.
    mq.kill_name_server();
    let mut refused = 0;
    for _ in 0..40 {
        let ack = relayed.send(&alice, 0, 962).await;
        if ack["success"] != true {
            assert_eq!(ack["errorCode"], 1001, "{ack}");
            refused += 1;
        }
        // Pace of a watch over two seconds without the name server.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{refused} of 40 sends refused while the name server was down");
    assert_eq!(refused, 0, "the broker was up: nothing needed refusing");

    mq.restart_name_server();
    for _ in 0..20 {
        let ack = relayed.send(&alice, 0, 962).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    relayed
        .delivered_once(&mut bob, Duration::from_secs(10))
        .await;
    let report = relay_report(&cluster, 1).await;
    assert_eq!(report["connected"], true, "{report}");
}
