//! `a_group_member_that_never_reads`: one member of a group stops reading. Every send to the
//! group still succeeds for the sender, every other member gets every message, and the stuck
//! member is cut once a write to it has made no progress for `spear.write_timeout_ms`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::node::{client, online, rss_mib, small_window_client, start};
use gru_testkit::sio::SioOptions;

const GROUP: u64 = 7;
const MESSAGES: usize = 600;
const CONTENT: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_that_never_reads() {
    let cluster = start(&[
        ("GRU_SPEAR__WRITE_TIMEOUT_MS", "1500"),
        ("GRU_SPEAR__MAX_MSGS_PER_SEC", "5000"),
        // 600 messages of 16 KB from one user: far past a person's history budget.
        ("GRU_SPEAR__MAX_HISTORY_BYTES_PER_MIN", "1073741824"),
    ])
    .await;
    let sender = client(&cluster, 1, SioOptions::default()).await;
    let mut reader = client(&cluster, 2, SioOptions::default()).await;
    let stuck = small_window_client(&cluster, 3).await;
    for c in [&sender, &reader, &stuck] {
        c.join(GROUP).await;
    }
    assert_eq!(online(&cluster, GROUP).await, vec![1, 2, 3]);
    let baseline = rss_mib(&cluster);
    stuck.stop_reading();

    let content = "m".repeat(CONTENT);
    let mut failed = Vec::new();
    let started = Instant::now();
    for i in 0..MESSAGES {
        let payload = json!({"type": 1, "target": {"id": GROUP}, "content": content});
        let reply = sender.call("msg", &payload).await.expect("msg ack");
        if reply["errorCode"] != 0 {
            failed.push((i, reply));
        }
    }
    let sent_in = started.elapsed();
    assert!(
        failed.is_empty(),
        "{} of {MESSAGES} sends failed for the sender, first: {:?}",
        failed.len(),
        failed.first()
    );

    let mut ids = BTreeSet::new();
    while ids.len() < MESSAGES {
        let Some(msg) = reader.next_event("msg", Duration::from_secs(10)).await else {
            break;
        };
        ids.insert(msg["id"].as_u64().expect("id"));
    }
    assert_eq!(
        ids.len(),
        MESSAGES,
        "the member that reads got every message"
    );

    cluster
        .wait_for(
            "the stuck member's connection to be cut",
            Duration::from_secs(20),
            || async { (!stuck.tcp_established()).then_some(()) },
        )
        .await;
    let cut_after = started.elapsed();
    cluster
        .wait_for(
            "the stuck member to leave the group",
            Duration::from_secs(10),
            || async { (online(&cluster, GROUP).await == vec![1, 2]).then_some(()) },
        )
        .await;
    let relay: Value = cluster
        .get(1, "/api/v1/relay")
        .await
        .expect("relay counters")
        .json()
        .await
        .expect("json");
    let after = rss_mib(&cluster);
    eprintln!(
        "sent {MESSAGES} x {CONTENT} B in {sent_in:?}; stuck member cut {cut_after:?} after the \
         first send; slow_clients {}; RSS {baseline:.1} -> {after:.1} MiB",
        relay["slow_clients"]
    );
    assert!(
        after - baseline < 24.0,
        "memory held after the stuck member left: {baseline:.1} -> {after:.1} MiB"
    );
    assert!(sender.is_open() && reader.is_open(), "the others stay");
}
