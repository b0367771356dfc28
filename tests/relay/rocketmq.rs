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
//!   comes again;
//! - `rocketmq_dead_spear_routes`: a spear killed for good: once its lease has ended the
//!   others remove its routes (and theirs stay), and publishers send no more copies to its
//!   topic; started again under its id, it routes again;
//! - `rocketmq_spear_back_from_the_dead`: a spear frozen (SIGSTOP) past its lease loses its
//!   routes to the sweep; thawed, it is registered anew, writes them again in a new
//!   generation that the sweep leaves alone, and its client, still connected, gets messages.

use std::time::{Duration, Instant};

use gru_testkit::ports::free_port;
use gru_testkit::rocketmq::RocketMq;
use gru_testkit::wait_for;
use gru_testkit::{ClusterOptions, TestCluster};

use crate::harness::{connect, drain, relay_counter, relay_report, send, spear_cluster, Relayed};

/// The routes in the cluster's Redis, read with `redis-cli`.
struct Routes {
    port: u16,
}

impl Routes {
    fn of(cluster: &mut TestCluster) -> Self {
        let redis = cluster.redis().expect("the cluster's Redis");
        Self { port: redis.port() }
    }

    fn cli(&self, args: &[&str]) -> Vec<String> {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    /// The route set of the channel `tag` (`u:7`, `g:9`; `spears`: the set of generations),
    /// sorted.
    fn set(&self, tag: &str) -> Vec<String> {
        self.cli(&["SMEMBERS", &format!("gru:gru-test:route:{{{tag}}}")])
    }

    /// Whether nothing names spear `sid` as a route any more: not in the route sets `tags`,
    /// no index of its generations, not in the set of generations.
    fn none_name(&self, sid: u64, tags: &[&str]) -> bool {
        let named = |tag: &str| self.set(tag).iter().any(|e| spear_of(e) == sid);
        !tags.iter().any(|tag| named(tag))
            && !named("spears")
            && self
                .cli(&["KEYS", &format!("gru:gru-test:route:{{s:{sid}:*}}")])
                .is_empty()
    }
}

/// The spear of a route entry: `GEN × 2²⁰ + SID` (`docs/relay.md`), with a generation.
fn spear_of(entry: &str) -> u64 {
    let packed: u64 = entry.parse().unwrap_or_else(|_| panic!("{entry:?}"));
    assert!(packed >> 20 > 0, "a generation: {entry:?}");
    packed & ((1 << 20) - 1)
}

/// The spears a route set's entries name, sorted, each once.
fn spears_in(entries: &[String]) -> Vec<u64> {
    let mut spears: Vec<u64> = entries.iter().map(|e| spear_of(e)).collect();
    spears.sort_unstable();
    spears.dedup();
    spears
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_dead_spear_routes() {
    const AFTER: u64 = 20;
    let mq = broker();
    let mut cluster = rocketmq_cluster(&[1, 2, 3], &mq).await;
    // Alice on spear 1, Bob on 2, Carol on 3; all three in group 97.
    let alice = connect(&cluster, 1, 971).await;
    let mut bob = connect(&cluster, 2, 972).await;
    let carol = connect(&cluster, 3, 973).await;
    for c in [&alice, &bob, &carol] {
        c.join(97).await;
    }
    let routes = Routes::of(&mut cluster);
    let tags = ["u:971", "u:972", "u:973", "g:97"];
    assert_eq!(spears_in(&routes.set("u:973")), [3]);
    assert_eq!(spears_in(&routes.set("g:97")), [1, 2, 3]);
    let ack = send(&alice, 0, 973, "before").await;
    assert_eq!(ack["success"], true, "{ack}");

    // Spear 3 dies for good: its lease ends, the registry drops it, and a sweep removes its
    // routes from Redis.
    drop(carol);
    cluster.kill(3);
    let killed = Instant::now();
    wait_for(
        "the dead spear's routes to be removed",
        Duration::from_secs(60),
        || {
            let gone = routes.none_name(3, &tags);
            async move { gone.then_some(()) }
        },
    )
    .await;
    eprintln!(
        "spear 3's routes were gone {:?} after kill -9 (lease {} ms)",
        killed.elapsed(),
        gru_testkit::LEASE_TTL_MS
    );
    // The living spears' routes stayed.
    assert_eq!(spears_in(&routes.set("u:971")), [1]);
    assert_eq!(spears_in(&routes.set("u:972")), [2]);
    assert_eq!(spears_in(&routes.set("g:97")), [1, 2]);

    // No more copies for spear 3's topic: a message to Carol (on no spear now) is sent to no
    // spear, one to the group to spear 2 only.
    let copies = relay_counter(&cluster, 1, "copies").await;
    for seq in 0..AFTER {
        let ack = send(&alice, 0, 973, &format!("c{seq}")).await;
        assert_eq!(ack["success"], true, "{ack}");
        let ack = send(&alice, 1, 97, &format!("g{seq}")).await;
        assert_eq!(ack["success"], true, "{ack}");
    }
    assert_eq!(
        relay_counter(&cluster, 1, "copies").await - copies,
        AFTER,
        "one copy per group message (to spear 2), none to the dead spear"
    );
    let got = drain(&mut bob, Duration::from_millis(800)).await;
    assert_eq!(got.len() as u64, AFTER, "bob: {got:?}");
    assert_eq!(relay_counter(&cluster, 1, "publish_errors").await, 0);

    // Started again under its id, spear 3 routes again: Carol gets what is sent to her.
    cluster.restart(3);
    cluster.wait_spears(1, 3).await;
    let mut carol = connect(&cluster, 3, 973).await;
    assert_eq!(spears_in(&routes.set("u:973")), [3]);
    let ack = send(&alice, 0, 973, "back").await;
    assert_eq!(ack["success"], true, "{ack}");
    let got = drain(&mut carol, Duration::from_millis(800)).await;
    assert!(
        got.iter().any(|m| m["content"] == "back"),
        "carol on the restarted spear: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_spear_back_from_the_dead() {
    let mq = broker();
    let mut cluster = rocketmq_cluster(&[1, 2, 3], &mq).await;
    let alice = connect(&cluster, 1, 981).await;
    let mut carol = connect(&cluster, 3, 983).await;
    let routes = Routes::of(&mut cluster);
    let before = routes.set("u:983");
    assert_eq!(spears_in(&before), [3]);

    // Spear 3 freezes past its lease: the registry drops it and the sweep removes its routes.
    let frozen = cluster.freeze(3);
    let at = Instant::now();
    wait_for(
        "the frozen spear's routes to be removed",
        Duration::from_secs(60),
        || {
            let gone = routes.none_name(3, &["u:983"]);
            async move { gone.then_some(()) }
        },
    )
    .await;
    drop(frozen);
    eprintln!(
        "spear 3's routes were swept {:?} after it froze",
        at.elapsed()
    );

    // Thawed, spear 3 is registered anew and writes its routes again, in a new generation.
    let again = wait_for("spear 3 to route again", Duration::from_secs(60), || {
        let now = routes.set("u:983");
        async move { (!now.is_empty()).then_some(now) }
    })
    .await;
    assert_eq!(spears_in(&again), [3]);
    // The sweep leaves the new generation alone: a few sweeps later spear 3 still routes, in
    // a generation newer than the swept one (a registration made just before the freeze and
    // the one after it may each begin one).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = routes.set("u:983");
    assert_eq!(spears_in(&later), [3], "{later:?}");
    let began = |e: &String| e.parse::<u64>().expect("a packed entry") >> 20;
    assert!(
        later.iter().all(|e| began(e) > began(&before[0])),
        "a newer generation than {before:?}: {later:?}"
    );

    // Carol's connection lived through it and gets what is sent now.
    let ack = send(&alice, 0, 983, "after").await;
    assert_eq!(ack["success"], true, "{ack}");
    let got = drain(&mut carol, Duration::from_millis(800)).await;
    assert!(
        got.iter().any(|m| m["content"] == "after"),
        "carol, on the thawed spear: {got:?}"
    );
}
