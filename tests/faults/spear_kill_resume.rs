//! `spear_kill_resume`: 200 clients over 3 spears exchange unicast and group messages; one spear
//! is killed (-9) mid-traffic; its clients get a new spear from ticket and resume with their
//! last positions. The checker proves every acknowledged message reached every recipient
//! exactly once, in channel order; the longest client outage is printed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;

use crate::fleet::{self, Checker, Client, Membership, Sent};
use crate::support::{spear_token, ticket};
use gru_testkit::delivery::DeliveryChecker;
use gru_testkit::history::IdOp;
use gru_testkit::{ClusterOptions, NodeSpec, TestCluster};

const CLIENTS: u64 = 200;
const GROUPS: u64 = 10;
const VICTIM: u64 = 3;

/// Three core nodes, each a spear and a ticket node (node 1 serves stat too).
pub async fn three_spears(options: ClusterOptions) -> TestCluster {
    let specs: Vec<NodeSpec> = (1..=3)
        .map(|id| {
            let roles: &[&'static str] = if id == 1 {
                &["core", "spear", "ticket", "stat"]
            } else {
                &["core", "spear", "ticket"]
            };
            NodeSpec::with_roles(id, roles)
        })
        .collect();
    let mut options = options;
    options
        .env
        .push(("GRU_SPEAR__MAX_MSGS_PER_SEC".into(), "1000".into()));
    let mut cluster = TestCluster::with(crate::gru(), &specs, options);
    cluster.start_all();
    cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    cluster
        .wait_for(
            "three spears registered",
            Duration::from_secs(20),
            || async { (cluster.view(1).await?.spears.len() == 3).then_some(()) },
        )
        .await;
    cluster
}

/// A small deterministic generator (the test must not depend on a seed it cannot print).
pub struct Lcg(u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Sends from random connected clients until `stop`: unicasts to random users and messages to
/// the sender's group. Returns every acknowledged send, with its times and id (for the id
/// history checker).
pub async fn traffic(
    clients: Arc<Vec<AsyncMutex<Client>>>,
    members: Membership,
    checker: Checker,
    seed: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<IdOp> {
    let mut rng = Lcg(seed);
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let i = rng.next(clients.len() as u64) as usize;
        let Ok(sender) = clients[i].try_lock() else {
            continue;
        };
        let (Some(conn), gid) = (sender.conn(), sender.gid) else {
            continue;
        };
        let uid = sender.uid;
        drop(sender);
        let target = if rng.next(2) == 0 {
            (0, rng.next(clients.len() as u64) + 1)
        } else {
            (1, gid)
        };
        n += 1;
        let content = format!("{seed}-{n}-from-{uid}");
        let sent = Instant::now();
        if let Sent::Acked(id) = fleet::send(&conn, target, &content, &members, &checker).await {
            acked.push(IdOp {
                sent,
                replied: Instant::now(),
                ids: vec![id],
            });
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    acked
}

/// Brings `client` back through ticket (asking `ticket_node`), avoiding `dead`; returns when it
/// is connected, authenticated with its positions and in its group.
pub async fn through_ticket(
    cluster: &TestCluster,
    client: &AsyncMutex<Client>,
    (ticket_node, spears, dead): (u64, &[u64], u64),
    checker: &Checker,
    deadline: Duration,
) {
    let start = Instant::now();
    let dead_addr = format!("127.0.0.1:{}", cluster.ports(dead).sio);
    let mut c = client.lock().await;
    c.disconnect().await;
    loop {
        assert!(
            start.elapsed() < deadline,
            "user {} found no spear within {deadline:?}",
            c.uid
        );
        let (addr, token2) = ticket(cluster, ticket_node, c.uid, &format!("u{}", c.uid)).await;
        if addr == dead_addr {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let spear = spears
            .iter()
            .copied()
            .find(|s| format!("127.0.0.1:{}", cluster.ports(*s).sio) == addr)
            .unwrap_or(0);
        match c.connect(spear, &addr, &token2, checker).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("user {} reconnecting: {e}", c.uid);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The relay's `history` counters of `node`, summed over `nodes`.
pub async fn history_counter(cluster: &TestCluster, nodes: &[u64], name: &str) -> u64 {
    let mut sum = 0;
    for node in nodes {
        if let Some(resp) = cluster.get(*node, "/api/v1/relay").await {
            if let Ok(v) = resp.json::<serde_json::Value>().await {
                sum += v["history"][name].as_u64().unwrap_or(0);
            }
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_kill_resume() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let checker: Checker = Arc::new(Mutex::new(DeliveryChecker::new()));
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let mut all = Vec::new();
    for uid in 1..=CLIENTS {
        let mut c = Client::new(uid, 1000 + uid % GROUPS);
        let spear = uid % 3 + 1;
        let addr = format!("127.0.0.1:{}", cluster.ports(spear).sio);
        c.connect(
            spear,
            &addr,
            &spear_token(uid, vec![1, 2, 3], exp),
            &checker,
        )
        .await
        .unwrap_or_else(|e| panic!("user {uid}: {e}"));
        all.push(c);
    }
    let members = Membership::of(&all);
    let clients: Arc<Vec<AsyncMutex<Client>>> =
        Arc::new(all.into_iter().map(AsyncMutex::new).collect());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|seed| {
            tokio::spawn(traffic(
                clients.clone(),
                members.clone(),
                checker.clone(),
                seed + 1,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    cluster.kill(VICTIM);
    let killed = Instant::now();
    let moving: Vec<usize> = (0..clients.len())
        .filter(|i| (*i as u64 + 1) % 3 + 1 == VICTIM)
        .collect();
    let outages: Vec<Duration> = futures_util::future::join_all(moving.iter().map(|i| {
        let (cluster, clients, checker) = (&cluster, &clients, &checker);
        async move {
            let ticket_node = if i % 2 == 0 { 1 } else { 2 };
            through_ticket(
                cluster,
                &clients[*i],
                (ticket_node, &[1, 2, 3], VICTIM),
                checker,
                Duration::from_secs(60),
            )
            .await;
            killed.elapsed()
        }
    }))
    .await;
    // Traffic on the new placement for a while, then quiet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ops = Vec::new();
    for s in senders {
        ops.extend(s.await.expect("sender"));
    }
    let acked = ops.len();
    fleet::settle(
        &checker,
        Duration::from_millis(500),
        Duration::from_secs(20),
    )
    .await;

    for i in &moving {
        let c = clients[*i].lock().await;
        assert!(
            c.spear != VICTIM && c.spear != 0,
            "user {} is on spear {}",
            c.uid,
            c.spear
        );
    }
    let longest = outages.iter().max().copied().unwrap_or_default();
    let replayed = history_counter(&cluster, &[1, 2], "replayed").await;
    let report = checker.lock().expect("checker").verify();
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
    assert!(report.is_clean(), "{report}");
}
