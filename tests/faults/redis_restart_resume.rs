//! `redis_restart_resume`: Redis (relay and history) is killed mid-traffic and started again
//! empty. While it is down senders get error 1001 naming Redis; the clients that were offline
//! meanwhile come back with their old positions and get a `resync` for every one of their
//! channels (its history is gone: a new epoch), never a replay that claims continuity; the
//! clients that stayed get a `resync` from their room when their channel's new epoch begins;
//! everything acknowledged after Redis returned is delivered exactly once, in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;

use crate::fleet::{self, Checker, Client, Membership, Sent};
use crate::spear_kill_resume::{three_spears, traffic};
use crate::support::spear_token;
use gru_testkit::delivery::DeliveryChecker;
use gru_testkit::ClusterOptions;

const CLIENTS: u64 = 60;
const GROUPS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_resume() {
    let mut cluster = three_spears(ClusterOptions::default()).await;
    let checker: Checker = Arc::new(Mutex::new(DeliveryChecker::new()));
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = |uid| spear_token(uid, vec![1, 2, 3], exp);
    let sio: Vec<String> = (1..=3)
        .map(|spear| format!("127.0.0.1:{}", cluster.ports(spear).sio))
        .collect();
    let addr = |spear: u64| sio[spear as usize - 1].clone();
    let mut all = Vec::new();
    for uid in 1..=CLIENTS {
        let mut c = Client::new(uid, 2000 + uid % GROUPS);
        let spear = uid % 3 + 1;
        c.connect(spear, &addr(spear), &token(uid), &checker)
            .await
            .unwrap_or_else(|e| panic!("user {uid}: {e}"));
        all.push(c);
    }
    let members = Membership::of(&all);
    let clients: Arc<Vec<AsyncMutex<Client>>> =
        Arc::new(all.into_iter().map(AsyncMutex::new).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let start_traffic = |seed: u64| {
        let (clients, members, checker, stop) = (
            clients.clone(),
            members.clone(),
            checker.clone(),
            stop.clone(),
        );
        tokio::spawn(traffic(clients, members, checker, seed, stop))
    };
    let senders: Vec<_> = (1..=2).map(start_traffic).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The clients of spear 2 go offline, then Redis dies.
    let offline: Vec<usize> = (0..clients.len())
        .filter(|i| (*i as u64 + 1) % 3 + 1 == 2)
        .collect();
    for i in &offline {
        clients[*i].lock().await.disconnect().await;
    }
    let epochs_before = checker.lock().expect("checker").verify().delivered;
    assert!(epochs_before > 0, "nothing was delivered before the outage");
    cluster.redis().expect("the cluster's Redis").kill();
    let down = Instant::now();

    // Senders are told: error 1001, naming Redis.
    // User 3 is on spear 1, which stays up.
    let probe = clients[2].lock().await.conn().expect("user 3 is online");
    let refusal = loop {
        let content = "during-the-outage";
        let payload =
            serde_json::json!({"type": 1, "target": {"id": 2001, "type": 1}, "content": content});
        let ack = probe
            .call("msg", &serde_json::Value::String(payload.to_string()))
            .await
            .expect("an answer");
        if ack["success"] != true {
            break ack;
        }
        assert!(
            down.elapsed() < Duration::from_secs(10),
            "no error while Redis is down"
        );
        checker.lock().expect("checker").acked(
            gru_testkit::delivery::Message::parse(&ack["data"]).expect("ack"),
            members_of(&members, 2001),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    checker
        .lock()
        .expect("checker")
        .refused(refusal["data"]["id"].as_u64());
    assert_eq!(refusal["errorCode"], 1001, "{refusal}");
    let msg = refusal["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("unavailable") && msg.contains("Redis"),
        "{refusal}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.redis().expect("the cluster's Redis").restart();
    // Acknowledged again once the spears have resubscribed.
    let back = Instant::now();
    loop {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "Redis came back but no message is acknowledged"
        );
        if let Sent::Acked(_) = fleet::send(&probe, (1, 2001), "after", &members, &checker).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "acknowledged again {:?} after Redis restarted",
        back.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The offline clients come back with their old positions.
    let mut presented = 0;
    for i in &offline {
        let mut c = clients[*i].lock().await;
        presented += c.positions().len();
        let (spear, uid) = (2, c.uid);
        c.connect(spear, &addr(spear), &token(uid), &checker)
            .await
            .unwrap_or_else(|e| panic!("user {uid}: {e}"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for s in senders {
        acked += s.await.expect("sender").len();
    }
    fleet::settle(
        &checker,
        Duration::from_millis(500),
        Duration::from_secs(20),
    )
    .await;

    let report = checker.lock().expect("checker").verify();
    eprintln!(
        "redis_restart_resume: {acked} acked by the senders; {} clients came back presenting \
         {presented} positions\n{report}",
        offline.len()
    );
    assert!(acked > 50, "too little traffic: {acked}");
    // Every position presented was of a lost history: each got its resync.
    assert!(
        report.resyncs >= presented,
        "{presented} positions presented after the restart, only {} resyncs",
        report.resyncs
    );
    let mut kinds = std::collections::BTreeMap::new();
    for v in &report.violations {
        let kind = format!("{v:?}");
        *kinds
            .entry(
                kind.split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    if let Some(gru_testkit::delivery::Violation::Missing { client, acked }) =
        report.violations.first()
    {
        let story = checker
            .lock()
            .expect("checker")
            .story(*client, &acked.channel);
        eprintln!(
            "what {client} saw of {}:\n  {}",
            acked.channel,
            story.join("\n  ")
        );
    }
    assert!(report.is_clean(), "{kinds:?}\n{report}");
}

fn members_of(members: &Membership, gid: u64) -> Vec<gru_testkit::delivery::ClientKey> {
    members.recipients(1, gid)
}
