//! 1,000 connections opened, authenticated and closed leave the spear's memory where it was:
//! nothing of a connection outlives it.

use std::time::Duration;

use crate::node::{sio, start, token, NODE, PATHS};
use crate::raw::{Next, Raw};

const CONNECTIONS: usize = 1000;
/// How far the resident memory may move, KiB.
const SLACK_KIB: i64 = 2048;

/// Opens `n` authenticated sessions at once, then closes them all and waits until the spear
/// counts none.
async fn churn(addr: &str, n: usize) {
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let (mut raw, _) = Raw::open(addr, 4).await;
        raw.send_text(&format!(r#"40{{"token":"{}"}}"#, token(1000 + i as u64)))
            .await;
        let connected = raw.packet(Duration::from_secs(10)).await;
        assert!(
            matches!(&connected, Ok(t) if t.starts_with("40")),
            "{connected:?}"
        );
        open.push(raw);
    }
    for mut raw in open {
        raw.send_raw(&crate::raw::frame(0x8, true, &1000u16.to_be_bytes()))
            .await;
        let end = raw.end(Duration::from_secs(10)).await;
        assert_ne!(end, Next::Quiet);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_came_and_went_leave_no_memory() {
    for path in PATHS {
        let cluster = start(path, &[]).await;
        let addr = sio(&cluster);
        // Two rounds first warm the allocator and every lazily built structure (after one,
        // socketioxide's spear still grew by 2.3 MB in one of several runs).
        for _ in 0..2 {
            churn(&addr, CONNECTIONS).await;
        }
        let no_users = || async {
            let spear: serde_json::Value = cluster
                .get(NODE, "/api/v1/spear")
                .await?
                .json()
                .await
                .ok()?;
            (spear["users"] == 0).then_some(())
        };
        gru_testkit::wait::wait_for("every user gone", Duration::from_secs(10), no_users).await;
        let before = cluster.rss_kib(NODE).expect("rss") as i64;
        churn(&addr, CONNECTIONS).await;
        gru_testkit::wait::wait_for("every user gone", Duration::from_secs(10), no_users).await;
        let after = cluster.rss_kib(NODE).expect("rss") as i64;
        assert!(
            (after - before).abs() <= SLACK_KIB,
            "{path}: {CONNECTIONS} connections moved RSS from {before} KiB to {after} KiB"
        );
    }
}
