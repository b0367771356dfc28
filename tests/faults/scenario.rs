//! What the fault scenarios share: a cluster of three spears, a crowd of logical clients on it
//! with their traffic, and the way a client goes back through ticket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use crate::fleet::{self, Checker, Client, Membership, Sent};
use gru_testkit::delivery::DeliveryChecker;
use gru_testkit::history::IdOp;
use gru_testkit::tickets::ticket;
use gru_testkit::tokens::spear_token;
use gru_testkit::{wait_for, ClusterOptions, TestCluster};

/// Logical clients connected to a cluster, the checker they feed, and their traffic.
pub struct Crowd {
    /// The clients, user `i + 1` at index `i`.
    pub clients: Arc<Vec<AsyncMutex<Client>>>,
    /// Who is in which group.
    pub members: Membership,
    /// What they received and what was acknowledged.
    pub checker: Checker,
    stop: Arc<AtomicBool>,
    senders: Vec<JoinHandle<Vec<IdOp>>>,
}

impl Crowd {
    /// Users `1..=n` split over the two spears of [`two_spears`] (odd users on the first), in
    /// four groups from `first_group`.
    pub async fn on_two_spears(cluster: &TestCluster, n: u64, first_group: u64) -> Self {
        Self::connect(
            cluster,
            n,
            |uid| first_group + uid % 4,
            |uid| SPEARS[(uid % 2) as usize],
            &SPEARS,
        )
        .await
    }

    /// Users `1..=n`, user `u` in group `group(u)`, connected to spear `spear(u)` with a token
    /// for `spears` (Gru's `auth` event), each in its group.
    pub async fn connect(
        cluster: &TestCluster,
        n: u64,
        group: impl Fn(u64) -> u64,
        spear: impl Fn(u64) -> u64,
        spears: &[u64],
    ) -> Self {
        let checker: Checker = Arc::new(Mutex::new(DeliveryChecker::new()));
        let exp = gru::clock::unix_ms() / 1000 + 600;
        let mut all = Vec::new();
        for uid in 1..=n {
            let mut c = Client::new(uid, group(uid));
            let on = spear(uid);
            let addr = cluster.sio_addr(on);
            let token = spear_token(uid, spears.to_vec(), exp);
            c.connect(on, &addr, &token, &checker)
                .await
                .unwrap_or_else(|e| panic!("user {uid}: {e}"));
            all.push(c);
        }
        Self {
            members: Membership::of(&all),
            clients: Arc::new(all.into_iter().map(AsyncMutex::new).collect()),
            checker,
            stop: Arc::default(),
            senders: Vec::new(),
        }
    }

    /// Starts `senders` tasks of [`traffic`].
    pub fn start_traffic(&mut self, senders: u64) {
        for seed in 1..=senders {
            let (clients, members, checker, stop) = (
                self.clients.clone(),
                self.members.clone(),
                self.checker.clone(),
                self.stop.clone(),
            );
            self.senders
                .push(tokio::spawn(traffic(clients, members, checker, seed, stop)));
        }
    }

    /// The clients on spear `spear` now: connected to it, or cut by it and not moved since.
    pub async fn on_spear(&self, spear: u64) -> Vec<usize> {
        let mut on = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            if c.lock().await.spear == spear {
                on.push(i);
            }
        }
        on
    }

    /// Moves every client that was on spear `dead` (user `u` starts on spear `u % 3 + 1`, as
    /// [`three_spears`] crowds are placed) to another spear through ticket, all at once, and
    /// returns how long each took from `since`.
    pub async fn move_off(
        &self,
        cluster: &TestCluster,
        dead: u64,
        since: Instant,
    ) -> (Vec<usize>, Vec<Duration>) {
        let moving: Vec<usize> = (0..self.clients.len())
            .filter(|i| (*i as u64 + 1) % 3 + 1 == dead)
            .collect();
        let outages = futures_util::future::join_all(moving.iter().map(|i| async move {
            let ticket_node = if i % 2 == 0 { 1 } else { 2 };
            through_ticket(
                cluster,
                &self.clients[*i],
                (ticket_node, &[1, 2, 3], Some(dead)),
                &self.checker,
                Duration::from_secs(60),
            )
            .await;
            since.elapsed()
        }))
        .await;
        (moving, outages)
    }

    /// Brings back through ticket every client whose connection the server closed (a spear
    /// out of the cluster tells its clients to reconnect through ticket and cuts them), as an
    /// application following `server_shutdown` would; returns how many came back.
    pub async fn reconnect_cut(&self, cluster: &TestCluster, spears: &[u64]) -> usize {
        let mut cut = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            if !c.lock().await.is_connected() {
                cut.push(i);
            }
        }
        futures_util::future::join_all(cut.iter().map(|i| {
            let ticket_node = [1, 2, 3][*i % 3];
            through_ticket(
                cluster,
                &self.clients[*i],
                (ticket_node, spears, None),
                &self.checker,
                Duration::from_secs(30),
            )
        }))
        .await;
        cut.len()
    }

    /// Waits (30 s at most) until `n` more sends are acknowledged than when it was called: the
    /// traffic flows through whatever the test is doing.
    pub async fn wait_acked(&self, n: usize) {
        let acked = || self.checker.lock().expect("checker").acked_count();
        let from = acked();
        wait_for(
            &format!("{n} more sends acknowledged (from {from})"),
            Duration::from_secs(30),
            || async { (acked() >= from + n).then_some(()) },
        )
        .await;
    }

    /// Stops the traffic, waits until deliveries settle, and returns every acknowledged send.
    pub async fn stop_traffic(&mut self) -> Vec<IdOp> {
        self.stop.store(true, Ordering::Relaxed);
        let mut ops = Vec::new();
        for s in self.senders.drain(..) {
            ops.extend(s.await.expect("sender"));
        }
        fleet::settle(
            &self.checker,
            Duration::from_millis(500),
            Duration::from_secs(20),
        )
        .await;
        ops
    }
}

/// Three core nodes, each a spear and a ticket node (node 1 serves stat too).
pub async fn three_spears(options: ClusterOptions) -> TestCluster {
    TestCluster::builder()
        .nodes(&[1, 2, 3], &["core", "spear", "ticket"])
        .node(1, &["core", "spear", "ticket", "stat"])
        .options(options)
        .env("GRU_SPEAR__MAX_MSGS_PER_SEC", "1000")
        .launch()
        .await
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
async fn traffic(
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
        // A client being moved (locked) or cut (its connection closed) does not send.
        let picked = clients[i]
            .try_lock()
            .ok()
            .and_then(|c| c.conn().filter(|conn| conn.is_open()).map(|conn| (c, conn)));
        let Some((sender, conn)) = picked else {
            // Pacing the sender: it picks another client in a moment.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let gid = sender.gid;
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
        // Pacing the sender: a client's rate, not a flood.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    acked
}

/// Brings `client` back through ticket (asking `ticket_node`), avoiding spear `dead` if given;
/// returns when it is connected, authenticated with its positions and in its group.
pub async fn through_ticket(
    cluster: &TestCluster,
    client: &AsyncMutex<Client>,
    (ticket_node, spears, dead): (u64, &[u64], Option<u64>),
    checker: &Checker,
    deadline: Duration,
) {
    let start = Instant::now();
    let dead_addr = dead.map(|d| cluster.sio_addr(d));
    let mut c = client.lock().await;
    c.disconnect().await;
    loop {
        assert!(
            start.elapsed() < deadline,
            "user {} found no spear within {deadline:?}",
            c.uid
        );
        let (addr, token2) = ticket(cluster, ticket_node, c.uid, &format!("u{}", c.uid)).await;
        if Some(&addr) == dead_addr.as_ref() {
            // Pace of the retries within the deadline above (ticket learns of the death soon).
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let spear = spears
            .iter()
            .copied()
            .find(|s| cluster.sio_addr(*s) == addr)
            .unwrap_or(0);
        match c.connect(spear, &addr, &token2, checker).await {
            Ok(()) => return,
            Err(e) => {
                eprintln!("user {} reconnecting: {e}", c.uid);
                // Pace of the retries within the deadline above.
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

/// The spear-only nodes of [`two_spears`].
pub const SPEARS: [u64; 2] = [4, 5];

/// Stops core `core` cleanly, leaves it down for a moment as a rolling restart would, starts
/// it again and waits for a leader among the three cores and for both spears registered.
pub async fn restart_core(cluster: &mut TestCluster, core: u64) {
    assert!(cluster.stop(core), "core {core} stops cleanly");
    // Down for a moment, as in a real rolling restart: the others go on without it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(core);
    cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    wait_spears(cluster, 2).await;
}

/// Three cores (ticket on all, stat on node 1) and two spear-only nodes (4 and 5), with
/// `options`; `prepare` sees the cluster before it starts.
pub async fn two_spears(
    options: ClusterOptions,
    prepare: impl FnOnce(&mut TestCluster),
) -> TestCluster {
    let mut cluster = TestCluster::builder()
        .nodes(&[1, 2, 3], &["core", "ticket"])
        .node(1, &["core", "ticket", "stat"])
        .spears(&SPEARS)
        .options(options)
        .env("GRU_SPEAR__MAX_MSGS_PER_SEC", "1000")
        .build();
    prepare(&mut cluster);
    cluster.start_all();
    cluster.wait_ready().await;
    cluster
}

/// Waits (30 s at most) until every node of `ticket_nodes` places some user on `spear` again
/// (a spear that came back is handed out once ticket knows it live: registry and gossip).
pub async fn wait_handed_out(cluster: &TestCluster, ticket_nodes: &[u64], spear: u64) {
    let addr = cluster.sio_addr(spear);
    for node in ticket_nodes {
        wait_for(
            &format!("ticket on node {node} to hand out spear {spear}"),
            Duration::from_secs(30),
            || async {
                // Placement is by load, then by hash: one of a few users lands on it.
                for uid in 9_001..=9_008 {
                    let (placed, _) = ticket(cluster, *node, uid, "probe").await;
                    if placed == addr {
                        return Some(());
                    }
                }
                None
            },
        )
        .await;
    }
}

/// Waits until a core lists `n` spears.
pub async fn wait_spears(cluster: &TestCluster, n: usize) {
    cluster
        .wait_for("the spears registered", Duration::from_secs(30), || async {
            for core in [1, 2, 3] {
                if let Some(view) = cluster.view(core).await {
                    if view.spears.len() == n {
                        return Some(());
                    }
                }
            }
            None
        })
        .await;
}
