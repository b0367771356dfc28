//! `sdk_faults`: ten users of the JavaScript SDK (`clients/js`, over the official
//! socket.io-client 4, driven by `tests/e2e/sdk_driver.js`) send to each other and to their
//! groups while the cluster is broken in turn: a spear killed (-9), a rolling restart of every
//! node, Redis stalled past the spears' timeout (sends whose outcome is unknown), Redis
//! restarted empty, a spear drained, and tokens that expire every 20 s. The delivery
//! checker finds every `send()` that resolved delivered exactly once to each recipient, in
//! order, or announced by a `resync`; no content arrives twice at anyone although sends were
//! retried (the SDK's retries are counted), and every `send()` resolved.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::scenario::{restart_core, two_spears, wait_spears, SPEARS};
use gru_testkit::delivery::{ClientKey, DeliveryChecker, Message, Resync};
use gru_testkit::e2e::NodeScript;
use gru_testkit::ClusterOptions;

/// The users (uid → group).
fn users() -> BTreeMap<u64, u64> {
    (7001..=7010).map(|uid| (uid, 700 + uid % 2)).collect()
}

/// Traffic between faults, so that each one finds sends in flight.
const BETWEEN: Duration = Duration::from_secs(3);

async fn gru_cli(cluster: &gru_testkit::TestCluster, args: &[&str]) -> String {
    let config = cluster.config_path().to_string_lossy().into_owned();
    let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
    all.extend(["--config".to_string(), config]);
    let gru = cluster.gru().clone();
    let out = tokio::task::spawn_blocking(move || gru.command().args(all).output())
        .await
        .expect("the gru task")
        .expect("run gru");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gru {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_faults() {
    // Spear tokens (ticket's token2) live 20 s: each client renews several times.
    let mut cluster = two_spears(ClusterOptions::default(), |c| {
        for id in [1, 2, 3] {
            c.set_node_env(id, "GRU_AUTH__TOKEN_TTL_SECS", "20");
        }
    })
    .await;
    let users = users();
    let spec = users
        .iter()
        .map(|(uid, group)| format!("{uid}:{group}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut driver = NodeScript::start(
        "sdk_driver.js",
        &[
            ("TICKET_URL", format!("http://{}", cluster.http_addr(2))),
            ("USERS", spec),
            (
                "GRU_CONFIG",
                cluster.config_path().to_string_lossy().into_owned(),
            ),
            ("TOKEN_TTL_SECS", "20".to_string()),
            ("SEND_EVERY_MS", "50".to_string()),
        ],
    );
    let mut lines = driver.until("ev", "ready", Duration::from_secs(60)).await;
    driver.send("send");
    tokio::time::sleep(BETWEEN).await;

    eprintln!("sdk_faults: kill -9 spear {}", SPEARS[0]);
    cluster.kill(SPEARS[0]);
    tokio::time::sleep(BETWEEN).await;
    cluster.restart(SPEARS[0]);
    wait_spears(&cluster, 2).await;
    tokio::time::sleep(BETWEEN).await;

    eprintln!("sdk_faults: rolling restart");
    for core in [1, 2, 3] {
        restart_core(&mut cluster, core).await;
    }
    for spear in SPEARS {
        assert!(cluster.stop(spear), "spear {spear} stops cleanly");
        cluster.restart(spear);
        wait_spears(&cluster, 2).await;
        tokio::time::sleep(BETWEEN).await;
    }

    // Redis stalls: the appends in flight outlast `redis.timeout_ms` (1 s), so their senders
    // hear 1001 "may be stored all the same" and the SDK sends them again under the same
    // clientMsgId — while Redis, once it resumes, runs the first attempts too.
    eprintln!("sdk_faults: Redis pauses its writes for 2.5 s");
    let paused = cluster
        .redis()
        .expect("the cluster's Redis")
        .cmd(&["CLIENT", "PAUSE", "2500", "WRITE"]);
    assert_eq!(paused.as_deref().map(str::trim), Some("OK"), "CLIENT PAUSE");
    tokio::time::sleep(BETWEEN * 2).await;

    eprintln!("sdk_faults: Redis restarted empty");
    cluster.redis().expect("the cluster's Redis").restart();
    tokio::time::sleep(BETWEEN * 2).await;

    eprintln!("sdk_faults: drain spear {}", SPEARS[1]);
    let node = SPEARS[1].to_string();
    let drained = gru_cli(
        &cluster,
        &["drain", "--node", &node, "--wave", "5", "--every-ms", "200"],
    )
    .await;
    assert!(drained.contains("is drained"), "{drained}");
    tokio::time::sleep(BETWEEN).await;
    gru_cli(&cluster, &["drain", "--node", &node, "--stop"]).await;
    tokio::time::sleep(BETWEEN).await;

    driver.send("stop");
    lines.extend(
        driver
            .until("ev", "settled", Duration::from_secs(180))
            .await,
    );
    // The last messages on their way: until a second goes by without one.
    lines.extend(quiet(&mut driver, Duration::from_secs(1), Duration::from_secs(30)).await);
    driver.send("close");
    lines.extend(driver.until("ev", "closed", Duration::from_secs(30)).await);

    verify(&users, &lines);
}

/// What `driver` prints until `still` goes by without a delivery, within `deadline`.
async fn quiet(driver: &mut NodeScript, still: Duration, deadline: Duration) -> Vec<Value> {
    let start = tokio::time::Instant::now();
    let (mut lines, mut last) = (Vec::new(), start);
    loop {
        let now = tokio::time::Instant::now();
        let more = driver.drain();
        if more.iter().any(|l| l["ev"] == "message") {
            last = now;
        }
        lines.extend(more);
        if now - last >= still {
            return lines;
        }
        assert!(
            now - start < deadline,
            "deliveries still arriving after {deadline:?}"
        );
        // Pace of looking at the driver's lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Feeds what the SDK's users saw to the checker, and checks what only the contents can tell.
fn verify(users: &BTreeMap<u64, u64>, lines: &[Value]) {
    let members = |group: u64| -> Vec<ClientKey> {
        users
            .iter()
            .filter(|(_, g)| **g == group)
            .map(|(uid, _)| ClientKey(*uid))
            .collect()
    };
    let mut checker = DeliveryChecker::new();
    let mut received: HashMap<(u64, String), u32> = HashMap::new();
    let (mut acked, mut refused, mut resyncs) = (0, Vec::new(), 0);
    let mut stats = Vec::new();
    for line in lines {
        let uid = line["uid"].as_u64().unwrap_or_default();
        match line["ev"].as_str().unwrap_or_default() {
            "ack" => {
                acked += 1;
                let data = &line["data"];
                let msg = Message::parse(data).unwrap_or_else(|e| panic!("ack {line}: {e:?}"));
                let to = &line["to"];
                let recipients = match (to["user"].as_u64(), to["group"].as_u64()) {
                    (Some(user), _) => vec![ClientKey(user)],
                    (None, Some(group)) => members(group),
                    _ => panic!("a send to nobody: {line}"),
                };
                checker.acked(msg, recipients);
            }
            "refused" => refused.push(line.clone()),
            "message" => {
                let data = &line["data"];
                let content = data["content"].as_str().unwrap_or_default().to_string();
                *received.entry((uid, content)).or_default() += 1;
                match Message::parse(data) {
                    Ok(msg) => checker.delivered(ClientKey(uid), msg),
                    Err(_) => checker
                        .delivered_bare(ClientKey(uid), data["id"].as_u64().unwrap_or_default()),
                }
            }
            "resync" => {
                resyncs += 1;
                let resync =
                    Resync::parse(&line["data"]).unwrap_or_else(|e| panic!("resync {line}: {e:?}"));
                checker.resync(ClientKey(uid), resync);
            }
            "positions" => {
                let places = line["positions"].as_object().cloned().unwrap_or_default();
                for (channel, at) in places {
                    let epoch = at["epoch"].as_str().and_then(|e| e.parse().ok());
                    if let (Some(epoch), Some(position)) = (epoch, at["position"].as_u64()) {
                        checker.went_live(ClientKey(uid), &channel, epoch, position);
                    }
                }
            }
            "stats" => stats.push(line["stats"].clone()),
            _ => {}
        }
    }
    let sum = |key: &str| -> u64 { stats.iter().map(|s| s[key].as_u64().unwrap_or(0)).sum() };
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    let report = checker.verify();
    eprintln!(
        "sdk_faults: {acked} sends acknowledged, {} refused; {} retried, {} duplicates dropped \
         by the SDK, {} reconnects, {} token renewals, {resyncs} resyncs\n{report}",
        refused.len(),
        sum("sendRetries"),
        sum("duplicatesDropped"),
        sum("reconnects"),
        sum("renewals"),
    );
    assert_eq!(stats.len(), users.len(), "every client's stats");
    assert!(acked > 500, "too little traffic to prove anything: {acked}");
    assert!(refused.is_empty(), "every send() resolves: {refused:?}");
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert!(
        sum("sendRetries") > 0,
        "no send was retried: the faults missed the sends"
    );
    assert!(sum("reconnects") > 0, "nobody reconnected");
    assert!(sum("renewals") > 0, "no token was renewed");
    if !report.is_clean() {
        // What the SDK's users saw, line by line, for the post-mortem.
        let kept = std::env::temp_dir().join(format!("sdk_faults-{}.jsonl", std::process::id()));
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        let _ = std::fs::write(&kept, text.join("\n"));
        panic!(
            "{report}\n{}\nthe driver's lines: {}",
            checker.stories(&report),
            kept.display()
        );
    }
}
