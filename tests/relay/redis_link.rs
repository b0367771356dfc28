//! `redis_link_outcomes`: how the Redis link names a failed command, which decides whether a
//! history append may have run (then its message is delivered from the history or not at all,
//! never live without a position). A command on a connection that Redis drops while holding
//! it may have run; one sent while nothing listens was never sent.

use std::time::Duration;

use gru::config::RedisSection;
use gru::net::redis::{RedisError, RedisLink};
use gru_testkit::redis::RedisServer;
use gru_testkit::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_link_outcomes() {
    let mut redis = RedisServer::start().expect("redis-server");
    let section = RedisSection {
        url: redis.url(),
        timeout_ms: 5_000,
        ..RedisSection::default()
    };
    let link = RedisLink::open(&section, None).expect("a link");
    let pong: String = link
        .query(&redis::cmd("PING"))
        .await
        .expect("Redis answers");
    assert_eq!(pong, "PONG");

    // Redis holds the write; then the server dies with it on the connection.
    let paused = redis.cmd(&["CLIENT", "PAUSE", "10000", "WRITE"]);
    assert_eq!(paused.as_deref().map(str::trim), Some("OK"), "{paused:?}");
    let held = tokio::spawn({
        let link = link.clone();
        async move {
            let mut set = redis::cmd("SET");
            set.arg("k").arg("v");
            link.query::<String>(&set).await
        }
    });
    // Long enough for an unheld write to have been answered: it must still be waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "Redis did not hold the write");
    redis.kill();
    let lost = held.await.expect("the task").expect_err("its server died");
    assert!(
        matches!(lost, RedisError::Lost(_)) && lost.may_have_run(),
        "a command on a dropped connection may have run: {lost:?}"
    );

    // With nothing listening, a command is never sent (the first one may still find the
    // dead connection, which the link cannot tell from a drop: it says "may have run").
    let refused = wait_for(
        "a command refused unsent",
        Duration::from_secs(10),
        || async {
            match link.query::<String>(&redis::cmd("PING")).await {
                Err(e @ RedisError::Unreachable(_)) => Some(e),
                Err(e) => {
                    assert!(e.may_have_run(), "{e:?}");
                    None
                }
                Ok(pong) => panic!("a dead server answered {pong}"),
            }
        },
    )
    .await;
    assert!(!refused.may_have_run(), "{refused:?}");

    // And it answers again once Redis is back.
    redis.restart();
    wait_for(
        "the link to answer again",
        Duration::from_secs(10),
        || async { link.query::<String>(&redis::cmd("PING")).await.ok() },
    )
    .await;
}
