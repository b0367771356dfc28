//! `gossip_auth`: a forged gossip datagram announcing a spear does not reach ticket's
//! placement. A forger joins the cluster's gossip with chitchat of its own — the cluster's
//! name, seeded with the ticket node's gossip address — and announces a live spear as draining
//! (its node id under a new generation, role spear, `draining = 1`), which would make ticket
//! stop handing it out. Without the cluster's gossip key (unsealed, or sealed with another key)
//! placement stays exactly as it was over many tickets; the same forger sealing with the
//! cluster's key moves every user off that spear, which shows the test would see the attack.
//!
//! `gossip_key_rotation`: the key is replaced on a running cluster in the three documented
//! steps (new key second, then first, then alone; a SIGHUP of every node after each), and no
//! datagram is dropped and no placement changes on the way; a node then moved alone to a key
//! nobody else has is cut off at once, which shows the reloads took effect.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use gru::config::ClusterConfig;
use gru::net::gossip::{GossipDrops, GossipKeys, SealedTransport};
use gru_testkit::{ClusterOptions, TestCluster, BUSINESS_SECRET, SPEAR_SECRET};
use serde_json::Value;

use gru_testkit::tokens::token1;

/// The ticket node (also the Raft group's only core).
const TICKET: u64 = 1;
/// The spear the forger says is draining.
const VICTIM: u64 = 3;
const OTHER_SPEAR: u64 = 2;
const USERS: u64 = 40;
/// How long the forgers without the key keep at it while every placement is checked; the one
/// with the key changes placement within a second or two.
const ATTACK: Duration = Duration::from_secs(6);

/// The warning a node logs (at most every 10 s) when it drops gossip datagrams.
const DROPPED: &str = "gossip datagrams dropped";

/// The ticket node and both spears, with `options`: started, every spear registered.
async fn launch(options: ClusterOptions) -> TestCluster {
    TestCluster::builder()
        .node(TICKET, &["core", "ticket"])
        .spears(&[OTHER_SPEAR, VICTIM])
        .options(options)
        .launch()
        .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

fn ticket_url(cluster: &TestCluster, uid: u64) -> String {
    let name = format!("user{uid}");
    format!(
        "http://{}/ticket?userId={uid}&userName={name}&appType=web&token1={}",
        cluster.http_addr(TICKET),
        token1(uid, &name),
    )
}

/// Where ticket places each user, by spear id; `None` while a ticket fails.
async fn placement(http: &reqwest::Client, cluster: &TestCluster) -> Option<BTreeMap<u64, u64>> {
    let spears: BTreeMap<String, u64> = [OTHER_SPEAR, VICTIM]
        .into_iter()
        .map(|id| (cluster.sio_addr(id), id))
        .collect();
    let mut placed = BTreeMap::new();
    for uid in 1..=USERS {
        let url = ticket_url(cluster, uid);
        let body: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        let addr = body["data"]["addr"].as_str()?.trim_start_matches("http://");
        placed.insert(uid, *spears.get(addr)?);
    }
    Some(placed)
}

/// Once both spears are registered: placement settled with users on both spears, the same
/// answer twice.
async fn settled(http: &reqwest::Client, cluster: &TestCluster) -> BTreeMap<u64, u64> {
    cluster.wait_spears(TICKET, 2).await;
    cluster
        .wait_for(
            "tickets for every user on both spears",
            Duration::from_secs(30),
            || async {
                let first = placement(http, cluster).await?;
                let both = first.values().any(|s| *s == VICTIM)
                    && first.values().any(|s| *s == OTHER_SPEAR);
                (both && placement(http, cluster).await? == first).then_some(first)
            },
        )
        .await
}

/// Checks every user's placement against `expected` for `period`; the rounds done.
async fn holds(
    http: &reqwest::Client,
    cluster: &TestCluster,
    expected: &BTreeMap<u64, u64>,
    period: Duration,
    during: &str,
) -> u32 {
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < period {
        let now = placement(http, cluster)
            .await
            .unwrap_or_else(|| panic!("ticket answers every user {during}"));
        assert_eq!(
            &now,
            expected,
            "ticket's placement changed {during}, after {:?}",
            started.elapsed()
        );
        rounds += 1;
    }
    rounds
}

/// A chitchat member of the cluster's gossip that says spear [`VICTIM`] is draining.
async fn forger(config: &ClusterConfig, transport: &dyn Transport) -> ChitchatHandle {
    let listen = SocketAddr::from(([127, 0, 0, 1], gru_testkit::ports::free_port()));
    let seed = config.node(TICKET).expect("the ticket node").listen.gossip;
    let chitchat = ChitchatConfig {
        // The victim's node id under a generation newer than its own.
        chitchat_id: ChitchatId::new(VICTIM.to_string(), gru::clock::unix_ms(), listen),
        cluster_id: config.cluster.name.clone(),
        gossip_interval: Duration::from_millis(100),
        listen_addr: listen,
        seed_nodes: vec![seed.to_string()],
        failure_detector_config: FailureDetectorConfig::default(),
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V0,
    };
    let announced = [("roles", "spear"), ("draining", "1"), ("load", "0")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
    spawn_chitchat(chitchat, announced, transport)
        .await
        .expect("the forger joins")
}

/// How many members `forger` has heard of, itself included.
async fn heard_of(forger: &ChitchatHandle) -> usize {
    forger.with_chitchat(|c| c.node_states().len()).await
}

fn sealed(keys: &[String]) -> SealedTransport {
    SealedTransport::new(GossipKeys::new(keys), GossipDrops::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_auth() {
    let cluster = launch(ClusterOptions::default()).await;
    let config = ClusterConfig::load(cluster.config_path()).expect("the generated config");
    let key = config.auth.gossip_keys.clone();
    assert!(
        !key.is_empty(),
        "the harness gives the cluster a gossip key"
    );
    let http = http();
    let baseline = settled(&http, &cluster).await;
    let on_victim = baseline.values().filter(|s| **s == VICTIM).count();

    // Forgers without the key: chitchat's plain UDP, and sealed with a key the cluster does not
    // list. Every placement stays put for the whole attack.
    let unsealed = forger(&config, &UdpTransport).await;
    let wrong_key = forger(
        &config,
        &sealed(&["not-the-cluster-gossip-key-0000000001".to_string()]),
    )
    .await;
    let during = "while forgers without the key announce the spear draining";
    let rounds = holds(&http, &cluster, &baseline, ATTACK, during).await;
    // Nobody answered them, not even with a sealed refusal they could read.
    assert_eq!(
        heard_of(&unsealed).await,
        1,
        "the cluster answered the unsealed forger"
    );
    assert_eq!(
        heard_of(&wrong_key).await,
        1,
        "the cluster answered the wrong key"
    );
    unsealed.shutdown().await.expect("forger stops");
    wrong_key.shutdown().await.expect("forger stops");
    assert!(
        cluster.log(TICKET).contains(DROPPED),
        "the ticket node never saw the forged datagrams"
    );

    // Control: the same forger sealing with the cluster's key does move placement, so the
    // checks above would have seen a forgery that got through.
    let keyed = forger(&config, &sealed(&key)).await;
    let moved = Instant::now();
    cluster
        .wait_for(
            "ticket to stop handing out the spear the keyed forger drains",
            Duration::from_secs(20),
            || async {
                let now = placement(&http, &cluster).await?;
                now.values().all(|s| *s == OTHER_SPEAR).then_some(())
            },
        )
        .await;
    assert!(heard_of(&keyed).await > 1, "the keyed forger was answered");
    eprintln!(
        "gossip_auth: {rounds} rounds of {USERS} tickets unchanged over {ATTACK:?} of unsealed \
         and wrong-key forgery; the keyed forger moved {on_victim} users off spear {VICTIM} in \
         {:?}",
        moved.elapsed()
    );
    keyed.shutdown().await.expect("forger stops");
}

const OLD_KEY: &str = "gossip-key-old-00000000000000000000001";
const NEW_KEY: &str = "gossip-key-new-00000000000000000000002";
const STRAY_KEY: &str = "gossip-key-stray-000000000000000000003";

/// The `[auth]` body with `keys` as the gossip keys.
fn auth(keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "gossip_keys = [{}]\nbusiness_secret = \"{BUSINESS_SECRET}\"\n\
         spear_secret = \"{SPEAR_SECRET}\"\n",
        keys.join(", ")
    )
}

/// Writes `keys` into the config and reloads `nodes` one after the other (SIGHUP), each
/// waited for: for a moment some nodes have the new list and some the old, as in a
/// deployment.
async fn reload(cluster: &mut TestCluster, nodes: &[u64], keys: &[&str]) {
    cluster.set_auth_toml(&auth(keys));
    for id in nodes {
        let reloads = || cluster.log(*id).matches("auth section reloaded").count();
        let before = reloads();
        cluster.signal(*id, "HUP");
        cluster
            .wait_for(
                &format!("node {id} to reload its keys"),
                Duration::from_secs(10),
                || async { (reloads() > before).then_some(()) },
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_key_rotation() {
    let options = ClusterOptions {
        auth_toml: Some(auth(&[OLD_KEY])),
        ..ClusterOptions::default()
    };
    let mut cluster = launch(options).await;
    let http = http();
    let baseline = settled(&http, &cluster).await;
    let all = [TICKET, OTHER_SPEAR, VICTIM];
    // Longer than gossip takes to declare a silent member dead (`dead_after_ms`, 800 ms).
    let hold = Duration::from_secs(2);
    for (step, keys) in [
        ("the new key second", &[OLD_KEY, NEW_KEY][..]),
        ("the new key first", &[NEW_KEY, OLD_KEY][..]),
        ("the old key removed", &[NEW_KEY][..]),
    ] {
        reload(&mut cluster, &all, keys).await;
        holds(&http, &cluster, &baseline, hold, &format!("after {step}")).await;
    }
    for id in all {
        assert!(
            !cluster.log(id).contains(DROPPED),
            "node {id} dropped gossip during the rotation"
        );
    }

    // A node that misses a step is cut off: ticket's node alone on a key nobody else has sees
    // every spear die, and places nobody.
    reload(&mut cluster, &[TICKET], &[STRAY_KEY]).await;
    cluster
        .wait_for(
            "ticket, cut off from gossip, to see every spear die",
            Duration::from_secs(20),
            || async {
                let url = ticket_url(&cluster, 1);
                let body: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                (body["errorCode"] == 701).then_some(())
            },
        )
        .await;
    assert!(cluster.log(TICKET).contains(DROPPED));
}
