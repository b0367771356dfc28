//! `history_channel_flood`: one user cannot make Redis or a spear hold history beyond its
//! budget. A token on four connections sending 60 KB messages to ever-new user ids, then
//! joining and leaving never-seen groups, is refused (1002) once it has used its minute's new
//! channels (`spear.max_new_channels_per_min`) and history bytes
//! (`spear.max_history_bytes_per_min`); its joins past the budget succeed without opening a
//! history. Redis's `used_memory` and the spear's RSS grow by no more than that budget allows,
//! and another user's channel keeps its history, which a resume replays.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::{ClusterOptions, TestCluster};

const VICTIM: u64 = 801;
const SENDER: u64 = 802;
const ATTACKER: u64 = 803;
/// The defaults: 60 new channels and 4 MiB of history a minute per user and spear.
const NEW_CHANNELS: u64 = 60;
const HISTORY_BYTES: u64 = 4 << 20;

fn msg(to: u64, content: &str) -> Value {
    Value::String(json!({"type": 0, "target": {"id": to}, "content": content}).to_string())
}

async fn connect(addr: &str, uid: u64, spears: Vec<u64>) -> SioClient {
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = gru_testkit::tokens::spear_token(uid, spears, exp);
    SioClient::connect(addr, Some(json!({"token": token})))
        .await
        .unwrap_or_else(|e| panic!("user {uid}: {e}"))
}

/// What the flood got: messages acked, refused for the budget, joins that opened a channel.
#[derive(Debug, Default)]
struct Flood {
    acked: u64,
    over_budget: u64,
    opened: u64,
}

/// Four connections of the attacker, each sending 60 KB messages to new users for `secs`,
/// then joining and leaving 100 never-seen groups each.
async fn flood(addr: &str, spear: u64, secs: u64) -> Flood {
    let big = "x".repeat(60_000);
    let tasks = (0..4u64).map(|c| {
        let (addr, big) = (addr.to_string(), big.clone());
        tokio::spawn(async move {
            let s = connect(&addr, ATTACKER, vec![spear]).await;
            let mut got = Flood::default();
            let start = Instant::now();
            let mut next = 1_000_000 + c * 1_000_000;
            while start.elapsed() < Duration::from_secs(secs) {
                next += 1;
                let ack = s.call("msg", &msg(next, &big)).await.expect("an answer");
                match ack["errorCode"].as_i64() {
                    Some(0) => got.acked += 1,
                    Some(1002) => got.over_budget += 1,
                    _ => panic!("unexpected answer: {ack}"),
                }
                // The flood's pace: within the message rate, so the budget is what refuses.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            for g in 0..100 {
                let gid = 5_000_000 + c * 1000 + g;
                let joined = s
                    .call("join", &json!({"groups": [gid]}))
                    .await
                    .expect("join");
                assert_eq!(
                    joined["success"], true,
                    "a join past the budget succeeds: {joined}"
                );
                if joined["data"]["positions"][format!("g:{gid}")]["epoch"] != "0" {
                    got.opened += 1;
                }
                let left = s
                    .call("leave", &json!({"groups": [gid]}))
                    .await
                    .expect("leave");
                assert_eq!(left["success"], true, "{left}");
                // The flood's pace: within the request rate, so the budget is what refuses.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        })
    });
    let mut all = Flood::default();
    for t in futures_util::future::join_all(tasks).await {
        let got = t.expect("a flooding connection");
        all.acked += got.acked;
        all.over_budget += got.over_budget;
        all.opened += got.opened;
    }
    all
}

/// The victim's channel before the flood: five messages, and the position after the second.
async fn victim_history(addr: &str, spears: Vec<u64>) -> (SioClient, String) {
    let sender = connect(addr, SENDER, spears.clone()).await;
    let mut epoch = String::new();
    for i in 1..=5 {
        let ack = sender
            .call("msg", &msg(VICTIM, &format!("v{i}")))
            .await
            .expect("ack");
        assert_eq!(ack["success"], true, "{ack}");
        epoch = ack["data"]["epoch"].as_str().expect("an epoch").to_string();
    }
    (sender, epoch)
}

/// The victim resumes after position 2 and must get v3, v4, v5.
async fn victim_resumes(addr: &str, spears: Vec<u64>, epoch: &str) {
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = gru_testkit::tokens::spear_token(VICTIM, spears, exp);
    let resume = json!({format!("u:{VICTIM}"): {"epoch": epoch, "position": 2}});
    let mut c = SioClient::connect(addr, Some(json!({"token": token, "resume": resume})))
        .await
        .expect("the victim reconnects");
    let mut got = Vec::new();
    while let Some(m) = c.next_event("msg", Duration::from_secs(5)).await {
        got.push(m["content"].as_str().unwrap_or_default().to_string());
        if got.len() == 3 {
            break;
        }
    }
    assert_eq!(got, ["v3", "v4", "v5"], "the victim's history was kept");
}

fn check(flood: &Flood, what: &str) {
    eprintln!("history_channel_flood ({what}): {flood:?}");
    // 60 KB each: about 70 fit the minute's 4 MiB (and what refills within the flood), but
    // only 60 new channels.
    assert!(
        flood.acked <= HISTORY_BYTES / 60_000 + 3,
        "{what}: {} messages of 60 KB accepted",
        flood.acked
    );
    assert!(flood.over_budget > 0, "{what}: nothing was refused");
    assert!(
        flood.acked + flood.opened <= NEW_CHANNELS,
        "{what}: {} channels opened past the budget of {NEW_CHANNELS}",
        flood.acked + flood.opened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_channel_flood() {
    // Redis (two spears): the history is in Redis.
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "ticket"])
        .spears(&[2, 3])
        .launch()
        .await;
    let addr = cluster.sio_addr(2);
    let (_sender, epoch) = victim_history(&addr, vec![2, 3]).await;
    let used = |cluster: &mut TestCluster| -> u64 {
        let info = cluster
            .redis()
            .expect("redis")
            .cmd(&["info", "memory"])
            .unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory")
    };
    let before = used(&mut cluster);
    let got = flood(&addr, 2, 4).await;
    let grew = used(&mut cluster).saturating_sub(before);
    eprintln!("Redis used_memory grew {grew} bytes");
    check(&got, "Redis");
    // The budget's 4 MiB, and each opened channel's own keys.
    assert!(grew < 8 << 20, "Redis grew {grew} bytes");
    victim_resumes(&cluster.sio_addr(3), vec![2, 3], &epoch).await;
    drop(cluster);

    // The local relay: the history is in the spear's memory.
    let local = TestCluster::single_spear(gru_testkit::gru(), ClusterOptions::default()).await;
    let addr = local.sio_addr(1);
    let (_sender, epoch) = victim_history(&addr, vec![1]).await;
    let before = local.rss_kib(1).expect("running");
    let got = flood(&addr, 1, 4).await;
    let grew_mib = local.rss_kib(1).expect("running").saturating_sub(before) as f64 / 1024.0;
    eprintln!("spear RSS grew {grew_mib:.1} MiB");
    check(&got, "memory");
    assert!(grew_mib < 16.0, "the spear's RSS grew {grew_mib:.1} MiB");
    victim_resumes(&addr, vec![1], &epoch).await;
}
