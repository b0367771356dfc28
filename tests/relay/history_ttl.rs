//! `history_ttl`: a channel's keys in Redis live at least `history.max_age` after its last
//! message, while an append renews their time to live only once per sixteenth of it (the
//! append script then runs two commands fewer): right after every append both keys have more
//! than max age to live; appends in a row leave the renewal time alone; one after the renewal
//! interval renews both to max age plus the interval.

use std::time::Duration;

use gru::config::RedisSection;
use gru::net::redis::RedisLink;
use gru::services::channel::Channel;
use gru::services::history::{renew_every, HistoryStore, RedisStore, Retention};
use gru_testkit::redis::RedisServer;
use gru_testkit::wait_for;
use tokio_util::sync::CancellationToken;

/// Long enough that no pause of a busy machine spans a renewal interval (10 s).
const MAX_AGE: Duration = Duration::from_secs(160);
/// What processing may take off a time to live between an append and the check.
const SLACK_MS: i64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ttl() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let section = RedisSection {
        url: redis.url(),
        ..RedisSection::default()
    };
    let link = RedisLink::open(&section, None).expect("a link");
    let cancel = CancellationToken::new();
    let monitor = tokio::spawn(link.clone().run_monitor(cancel.clone()));
    let store = RedisStore::new(
        link,
        "ttl",
        Retention {
            max_messages: 100,
            max_age: MAX_AGE,
            resend_window: Duration::from_secs(60),
        },
    );
    let channel = Channel::Group(9);
    let (hash, stream) = ("gru:ttl:hmeta:{g:9}", "gru:ttl:hist:{g:9}");
    let every = renew_every(MAX_AGE);
    assert_eq!(every, Duration::from_secs(10));
    let (max_age, most) = (
        MAX_AGE.as_millis() as i64,
        (MAX_AGE + every).as_millis() as i64,
    );
    let cli = |args: &[&str]| -> String {
        redis
            .cmd(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?}"))
            .trim()
            .to_string()
    };
    let ttls =
        || -> [i64; 2] { [hash, stream].map(|key| cli(&["PTTL", key]).parse().expect("a PTTL")) };
    let renewed = || -> i64 { cli(&["HGET", hash, "x"]).parse().expect("a renewal time") };

    // The link connects in the background: the first append is taken once it has.
    wait_for("a first append", Duration::from_secs(20), || async {
        store.append(channel, 1_000, r#"{"n":1}"#).await.ok()
    })
    .await;
    for ttl in ttls() {
        assert!(
            ttl > max_age - SLACK_MS && ttl <= most,
            "first append: {ttl} ms"
        );
    }
    let first = renewed();

    // Appends in a row: no renewal, and still more than max age to live.
    for n in 2..=5 {
        store
            .append(channel, 1_000 + n, &format!(r#"{{"n":{n}}}"#))
            .await
            .expect("stored");
        assert_eq!(renewed(), first, "append {n} renewed the time to live");
        for ttl in ttls() {
            assert!(ttl > max_age - SLACK_MS, "append {n}: {ttl} ms");
        }
    }

    // A renewal interval later (the clock's part played by an older renewal time and shorter
    // times to live): the next append renews both keys.
    let aged = (first - every.as_millis() as i64 - 1).to_string();
    cli(&["HSET", hash, "x", &aged]);
    for key in [hash, stream] {
        cli(&["PEXPIRE", key, "5000"]);
    }
    store
        .append(channel, 1_006, r#"{"n":6}"#)
        .await
        .expect("stored");
    assert!(renewed() >= first, "the renewal time moved on");
    for ttl in ttls() {
        assert!(
            ttl > most - SLACK_MS && ttl <= most,
            "after renewal: {ttl} ms"
        );
    }
    let page = store.read(channel, 0, 10).await.expect("a read");
    assert_eq!(page.entries.len(), 6, "{page:?}");

    cancel.cancel();
    let _ = monitor.await;
}
