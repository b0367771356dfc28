//! Static stability: two of the three cores die and the data plane goes on (`docs/operations.md`,
//! "When the core loses its quorum"). Clients in groups send through history and relay on two
//! spear-only nodes; two cores (the leader among them) are killed for 20 s. No client is
//! disconnected, every acknowledged message is delivered once and in order, new clients get
//! tickets, authenticate and join; in unique mode sends go on, in strict mode each is refused
//! within a second with the documented reason and none is acknowledged. When the cores come
//! back, the spears renew without cutting anyone and strict sends succeed again within 2 s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fleet::{self, Client, Sent};
use crate::scenario::{two_spears, wait_spears, Crowd, SPEARS};
use gru_testkit::delivery::DeliveryChecker;
use gru_testkit::tickets::ticket;
use gru_testkit::{ClusterOptions, TestCluster};

const CLIENTS: u64 = 20;
const CORES: [u64; 3] = [1, 2, 3];
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_keeps_clients() {
    outage("unique").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_keeps_clients_strict() {
    outage("strict").await;
}

async fn outage(mode: &str) {
    let options = ClusterOptions {
        env: vec![("GRU_IDGEN__MODE".into(), mode.into())],
        ..ClusterOptions::default()
    };
    let mut cluster = two_spears(options, |_| {}).await;
    wait_spears(&cluster, 2).await;
    let mut crowd = Crowd::on_two_spears(&cluster, CLIENTS, 4000).await;
    crowd.start_traffic(2);
    crowd.wait_acked(100).await;

    // Kill the leader and one follower: no quorum is left.
    let killed = leader_and_one_more(&cluster).await;
    let survivor = CORES
        .iter()
        .copied()
        .find(|c| !killed.contains(c))
        .expect("one core left");
    for id in &killed {
        cluster.kill(*id);
    }
    let cut = Instant::now();

    // The spears say they are degraded, not fenced.
    wait_standing(&cluster, "degraded", Duration::from_secs(20)).await;
    // The surviving core's cluster view says what is wrong.
    let view: Value = cluster
        .get(survivor, "/api/v1/cluster?consistency=local")
        .await
        .expect("the surviving core answers")
        .json()
        .await
        .expect("a cluster view");
    assert_eq!(view["leader_id"], Value::Null, "{view}");
    assert!(
        view["problem"]
            .as_str()
            .is_some_and(|p| p.starts_with("no leader: the core has no quorum")),
        "{view}"
    );
    if mode == "unique" {
        // Messages go on: every node issues its own ids.
        crowd.wait_acked(100).await;
    } else {
        let slowest = refused_within_a_second(&crowd).await;
        eprintln!("strict: ten sends refused during the outage, the slowest after {slowest:?}");
    }
    // New clients get a ticket from the surviving core, authenticate and join. They are not
    // among the crowd's recipients, so what they receive is recorded apart; they stay
    // connected to the end.
    let newcomers_seen: fleet::Checker = Arc::new(Mutex::new(DeliveryChecker::new()));
    let mut newcomers = Vec::new();
    for uid in [CLIENTS + 1, CLIENTS + 2] {
        let mut newcomer = Client::new(uid, 4000 + uid % 4);
        let (addr, token2) = ticket(&cluster, survivor, uid, &format!("u{uid}")).await;
        let spear = SPEARS
            .iter()
            .copied()
            .find(|s| cluster.sio_addr(*s) == addr)
            .unwrap_or_else(|| panic!("ticket placed user {uid} on {addr}, no spear of ours"));
        newcomer
            .connect(spear, &addr, &token2, &newcomers_seen)
            .await
            .unwrap_or_else(|e| panic!("newcomer {uid} during the outage: {e}"));
        newcomers.push(newcomer);
    }
    let left = OUTAGE.saturating_sub(cut.elapsed());
    // The outage itself: nothing to wait for but its end.
    tokio::time::sleep(left).await;
    assert_all_connected(&crowd, "during the outage").await;

    for id in &killed {
        cluster.restart(*id);
    }
    cluster.wait_leader(&CORES, Duration::from_secs(30)).await;
    if mode == "strict" {
        let took = first_ack_after(&crowd, Duration::from_secs(10)).await;
        assert!(
            took <= Duration::from_secs(2),
            "a send succeeded only {took:?} after a leader was back"
        );
        eprintln!("strict: the first send acknowledged {took:?} after a leader was back");
    }
    wait_standing(&cluster, "serving", Duration::from_secs(20)).await;
    wait_spears(&cluster, 2).await;
    crowd.wait_acked(50).await;
    assert_all_connected(&crowd, "after the cores came back").await;
    for n in &newcomers {
        assert!(n.is_connected(), "newcomer {} was disconnected", n.uid);
    }
    eprintln!("{mode}: every client kept through the outage and the return");

    crowd.stop_traffic().await;
    let checker = crowd.checker.lock().expect("checker");
    let report = checker.verify();
    assert!(report.is_clean(), "{report}\n{}", checker.stories(&report));
    assert!(report.delivered > 0, "nothing was delivered");
}

/// The leader and one follower of the cores: killed together, they leave no quorum.
async fn leader_and_one_more(cluster: &TestCluster) -> Vec<u64> {
    let (leader, _) = cluster.wait_leader(&CORES, Duration::from_secs(30)).await;
    std::iter::once(leader)
        .chain(CORES.iter().copied().filter(|c| *c != leader).take(1))
        .collect()
}

/// Waits until both spears report `state` as their standing.
async fn wait_standing(cluster: &TestCluster, state: &str, deadline: Duration) {
    for spear in SPEARS {
        cluster
            .wait_for(&format!("spear {spear} {state}"), deadline, || async {
                (standing(cluster, spear).await.as_deref() == Some(state)).then_some(())
            })
            .await;
    }
}

/// The spear's standing as `GET /api/v1/spear` answers it.
async fn standing(cluster: &TestCluster, spear: u64) -> Option<String> {
    let answer: Value = cluster
        .get(spear, "/api/v1/spear")
        .await?
        .json()
        .await
        .ok()?;
    answer["standing"]["state"].as_str().map(str::to_string)
}

async fn assert_all_connected(crowd: &Crowd, when: &str) {
    for c in crowd.clients.iter() {
        let c = c.lock().await;
        assert!(c.is_connected(), "user {} was disconnected {when}", c.uid);
    }
}

/// In strict mode without a leader: ten sends from clients of both spears, each refused with
/// error 1001 naming the id leader, within a second, none acknowledged. Returns the slowest.
async fn refused_within_a_second(crowd: &Crowd) -> Duration {
    let mut slowest = Duration::ZERO;
    for n in 0..10u64 {
        let i = (n % CLIENTS) as usize;
        let conn = crowd.clients[i].lock().await.conn().expect("connected");
        let payload = json!({"type": 1, "target": {"id": 4000 + (i as u64 + 1) % 4, "type": 1},
            "content": format!("during the outage {n}")});
        let sent = Instant::now();
        let ack = conn
            .call_within(
                "msg",
                &Value::String(payload.to_string()),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|e| panic!("send {n} got no answer: {e}"));
        let took = sent.elapsed();
        assert_eq!(
            ack["success"], false,
            "acknowledged without a leader: {ack}"
        );
        assert_eq!(ack["errorCode"], 1001, "{ack}");
        let msg = ack["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("id leader is unavailable") && msg.contains("retry later"),
            "the refusal does not say why: {ack}"
        );
        assert!(
            took < Duration::from_secs(1),
            "send {n} refused only after {took:?}"
        );
        slowest = slowest.max(took);
        crowd.checker.lock().expect("checker").refused(None);
    }
    slowest
}

/// How long until a send is acknowledged, trying one after another.
async fn first_ack_after(crowd: &Crowd, deadline: Duration) -> Duration {
    let start = Instant::now();
    let mut n = 0;
    loop {
        assert!(
            start.elapsed() < deadline,
            "no send acknowledged within {deadline:?}"
        );
        let i = n % CLIENTS as usize;
        n += 1;
        let (conn, gid) = {
            let c = crowd.clients[i].lock().await;
            (c.conn().expect("connected"), c.gid)
        };
        if let Sent::Acked(_) = fleet::send(
            &conn,
            (1, gid),
            "after the return",
            &crowd.members,
            &crowd.checker,
        )
        .await
        {
            return start.elapsed();
        }
        // Pace of the retries within the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both sides of the rule that decides between fenced and degraded (`docs/operations.md`,
/// "Fenced or degraded: the rule"), with both spears cut off from every core's gRPC (Redis and
/// gossip still reach them):
///
/// - while the cores have a leader, gossip shows it live: the cluster works without the spears,
///   so each is fenced and moves its clients away;
/// - while the cores have none (two killed), gossip shows none: the spears keep every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spears_cut_from_the_cores() {
    let options = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let mut cluster = two_spears(options, |_| {}).await;
    wait_spears(&cluster, 2).await;
    let crowd = Crowd::on_two_spears(&cluster, CLIENTS, 4000).await;

    // A leader the others see: fenced, every client told to leave.
    for spear in SPEARS {
        cluster.partition(spear);
    }
    wait_standing(&cluster, "fenced", Duration::from_secs(20)).await;
    cluster
        .wait_for(
            "every client moved away",
            Duration::from_secs(20),
            || async {
                for c in crowd.clients.iter() {
                    if c.lock().await.is_connected() {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    for spear in SPEARS {
        cluster.heal(spear);
    }
    wait_standing(&cluster, "serving", Duration::from_secs(30)).await;
    let back = crowd.reconnect_cut(&cluster, &SPEARS).await;
    assert_eq!(
        back, CLIENTS as usize,
        "clients brought back through ticket"
    );

    // No leader anywhere, and the spears cut off as well: degraded, every client kept.
    let killed = leader_and_one_more(&cluster).await;
    for id in &killed {
        cluster.kill(*id);
    }
    for spear in SPEARS {
        cluster.partition(spear);
    }
    let cut = Instant::now();
    wait_standing(&cluster, "degraded", Duration::from_secs(20)).await;
    // Two more leases: long past the point where a fenced spear would have cut its clients.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_all_connected(&crowd, "while no core had a leader").await;
    for spear in SPEARS {
        assert_eq!(standing(&cluster, spear).await.as_deref(), Some("degraded"));
    }
    for spear in SPEARS {
        cluster.heal(spear);
    }
    for id in &killed {
        cluster.restart(*id);
    }
    wait_standing(&cluster, "serving", Duration::from_secs(30)).await;
    assert_all_connected(&crowd, "after the cores came back").await;
    eprintln!("degraded for {:?}, every client kept", cut.elapsed());
}
