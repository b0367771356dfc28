//! `cluster_append_once`: on a Redis Cluster, a history append whose answer comes too late is
//! stored once. The masters hold every write (`CLIENT PAUSE … WRITE`) past
//! `redis.timeout_ms`; the append is reported uncertain, and when the pause ends the channel
//! holds the message at one position. The cluster client retries a request after some errors
//! (`retries` in `net::redis`), and a resend of an append that had run would store the message
//! twice and deliver it twice; this checks that a late answer leads to no such resend.

use std::time::{Duration, Instant};

use gru::config::RedisSection;
use gru::net::redis::RedisLink;
use gru::services::channel::Channel;
use gru::services::history::{HistoryError, HistoryStore, RedisStore, Retention};
use gru_testkit::redis::RedisCluster;
use gru_testkit::wait_for;
use tokio_util::sync::CancellationToken;

const TIMEOUT_MS: u64 = 400;
/// Long enough for every resend the client could make to be held as well.
const PAUSE_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_append_once() {
    let mut cluster = RedisCluster::start(3);
    let section = RedisSection {
        url: cluster.seed_url(),
        cluster: true,
        timeout_ms: TIMEOUT_MS,
        ..RedisSection::default()
    };
    let link = RedisLink::open(&section, None).expect("a link");
    let cancel = CancellationToken::new();
    let monitor = tokio::spawn(link.clone().run_monitor(cancel.clone()));
    let store = RedisStore::new(
        link.clone(),
        "append-once",
        Retention {
            max_messages: 100,
            max_age: Duration::from_secs(60),
            resend_window: Duration::from_secs(60),
        },
    );
    let channel = Channel::Group(7);

    // The cluster client connects in the background: wait for a first append to be stored.
    let first = wait_for("a first append stored", Duration::from_secs(20), || async {
        store.append(channel, 1_000, r#"{"n":1}"#).await.ok()
    })
    .await;

    for i in 0..cluster.ports().len() {
        let paused = cluster
            .node(i)
            .cmd(&["CLIENT", "PAUSE", &PAUSE_MS.to_string(), "WRITE"]);
        assert_eq!(
            paused.as_deref().map(str::trim),
            Some("OK"),
            "pause on master {i}: {paused:?}"
        );
    }
    let held = Instant::now();
    let outcome = store.append(channel, 1_001, r#"{"n":2}"#).await;
    assert!(
        matches!(outcome, Err(HistoryError::Uncertain(_))),
        "an append answered too late is uncertain: {outcome:?}"
    );
    assert!(
        held.elapsed() < Duration::from_millis(PAUSE_MS),
        "the append waited out the pause ({:?}): the answer was not too late",
        held.elapsed()
    );

    // The held append runs when the pause ends (reads are not paused: watch the head move).
    wait_for(
        "the held append to run",
        Duration::from_secs(20),
        || async {
            let head = store.read(channel, first.offset, 0).await;
            head.is_ok_and(|page| page.head > first.offset)
                .then_some(())
        },
    )
    .await;
    // A later append on the same connection runs after everything held before it, resends
    // included: it lands right after one stored copy.
    let next = store
        .append(channel, 1_002, r#"{"n":3}"#)
        .await
        .expect("the pause is over");
    let page = store.read(channel, first.offset, 10).await.expect("a read");
    let stored: Vec<&str> = page.entries.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        next.offset,
        first.offset + 2,
        "the held append ran more than once: {stored:?}"
    );
    assert_eq!(stored, [r#"{"n":2}"#, r#"{"n":3}"#], "{page:?}");

    cancel.cancel();
    let _ = monitor.await;
}
