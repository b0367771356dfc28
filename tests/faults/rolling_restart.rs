//! `rolling_restart`: every node — the three cores, then both spears — is stopped and started
//! again, one at a time, while clients exchange messages. The clients of a spear that stops move
//! through ticket to the other spear and resume. Message ids stay strictly increasing in real
//! time across the leader changes, the delivery checker is clean, and no client is away longer
//! than its own reconnect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;

use crate::fleet::{self, Checker, Client, Membership};
use crate::spear_kill_resume::{through_ticket, traffic};
use crate::support::spear_token;
use gru_testkit::delivery::DeliveryChecker;
use gru_testkit::{history, ClusterOptions, NodeSpec, TestCluster};

const CLIENTS: u64 = 40;
const SPEARS: [u64; 2] = [4, 5];

/// Three cores (ticket on all, stat on node 1) and two spear-only nodes.
async fn cluster() -> TestCluster {
    let specs: Vec<NodeSpec> = vec![
        NodeSpec::with_roles(1, &["core", "ticket", "stat"]),
        NodeSpec::with_roles(2, &["core", "ticket"]),
        NodeSpec::with_roles(3, &["core", "ticket"]),
        NodeSpec::spear(4),
        NodeSpec::spear(5),
    ];
    let options = ClusterOptions {
        env: vec![("GRU_SPEAR__MAX_MSGS_PER_SEC".into(), "1000".into())],
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::with(crate::gru(), &specs, options);
    cluster.start_all();
    cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    wait_spears(&cluster, 2).await;
    cluster
}

async fn wait_spears(cluster: &TestCluster, n: usize) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart() {
    let mut cluster = cluster().await;
    let checker: Checker = Arc::new(Mutex::new(DeliveryChecker::new()));
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let mut all = Vec::new();
    for uid in 1..=CLIENTS {
        let mut c = Client::new(uid, 3000 + uid % 4);
        let spear = SPEARS[(uid % 2) as usize];
        let addr = format!("127.0.0.1:{}", cluster.ports(spear).sio);
        c.connect(
            spear,
            &addr,
            &spear_token(uid, SPEARS.to_vec(), exp),
            &checker,
        )
        .await
        .unwrap_or_else(|e| panic!("user {uid}: {e}"));
        all.push(c);
    }
    let members = Membership::of(&all);
    let clients: Arc<Vec<AsyncMutex<Client>>> =
        Arc::new(all.into_iter().map(AsyncMutex::new).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (1..=2)
        .map(|seed| {
            let (clients, members, checker, stop) = (
                clients.clone(),
                members.clone(),
                checker.clone(),
                stop.clone(),
            );
            tokio::spawn(traffic(clients, members, checker, seed, stop))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    for core in [1, 2, 3] {
        assert!(cluster.stop(core), "core {core} stops cleanly");
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(core);
        cluster
            .wait_leader(&[1, 2, 3], Duration::from_secs(30))
            .await;
        wait_spears(&cluster, 2).await;
        eprintln!("core {core} restarted");
    }

    let mut longest = Duration::ZERO;
    for spear in SPEARS {
        let moving: Vec<usize> = (0..clients.len())
            .filter(|i| SPEARS[((*i as u64 + 1) % 2) as usize] == spear)
            .collect();
        let stopped = Instant::now();
        // Its clients are told (server_shutdown) and cut; each goes back through ticket.
        assert!(cluster.stop(spear), "spear {spear} stops cleanly");
        let outages: Vec<Duration> = futures_util::future::join_all(moving.iter().map(|i| {
            let (cluster, clients, checker) = (&cluster, &clients, &checker);
            async move {
                let ticket_node = [1, 2, 3][*i % 3];
                through_ticket(
                    cluster,
                    &clients[*i],
                    (ticket_node, &SPEARS, spear),
                    checker,
                    Duration::from_secs(30),
                )
                .await;
                stopped.elapsed()
            }
        }))
        .await;
        longest = longest.max(outages.into_iter().max().unwrap_or_default());
        cluster.restart(spear);
        wait_spears(&cluster, 2).await;
        eprintln!(
            "spear {spear} restarted; its {} clients moved",
            moving.len()
        );
        // The clients of the next spear to stop come back to one that is up: the one just
        // restarted is placed again once both are registered.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for s in senders {
        ops.extend(s.await.expect("sender"));
    }
    fleet::settle(
        &checker,
        Duration::from_millis(500),
        Duration::from_secs(20),
    )
    .await;
    let ids = history::check_strict(&ops).unwrap_or_else(|e| panic!("message ids: {e}"));
    let report = checker.lock().expect("checker").verify();
    eprintln!(
        "rolling_restart: {ids} acked message ids strictly increasing in real time; the longest \
         a spear's client was away: {longest:?} (from the stop, which waits out the spear's drain, to resumed)\n{report}"
    );
    assert!(ops.len() > 100, "too little traffic: {}", ops.len());
    assert!(
        longest < Duration::from_secs(10),
        "a client was away for {longest:?}"
    );
    assert!(report.is_clean(), "{report}");
}
