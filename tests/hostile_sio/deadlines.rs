//! Connections that never authenticate, fail to and ignore being told, or outlive their token
//! are closed: told first when they can be, and cut when they do not leave.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::node::{client, sio, start, token};
use gru_testkit::sio::{SioClient, SioConn, SioOptions};

const TIMEOUTS: &[(&str, &str)] = &[
    ("GRU_SPEAR__AUTH_TIMEOUT_MS", "1000"),
    ("GRU_HTTP__HEADER_READ_TIMEOUT_MS", "1000"),
];
const WAIT: Duration = Duration::from_secs(6);

/// Whether the server closes a raw TCP connection within `WAIT` (a read returns 0 or fails).
async fn raw_closed(mut stream: tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_closed() {
    let cluster = start(TIMEOUTS).await;
    let addr = sio(&cluster);

    // Never authenticates: told why, then closed.
    let mut idle = SioClient::connect(&addr, None).await.expect("connect");
    let notice = idle
        .next_event("server_disconnect", WAIT)
        .await
        .expect("told before being closed");
    assert_eq!(notice["data"]["reason"], "auth_timeout", "{notice}");
    assert!(idle.closed_within(WAIT).await, "closed");

    // Never authenticates and ignores the disconnect: the TCP connection is cut.
    let hostile = SioOptions {
        ignore_disconnect: true,
        ..SioOptions::default()
    };
    let mut stubborn = SioClient::connect_with(&addr, hostile.clone())
        .await
        .expect("connect");
    assert!(stubborn.closed_within(WAIT).await, "cut after the deadline");

    // Fails to authenticate and ignores the disconnect: cut as well.
    let mut liar = SioClient::connect_with(&addr, hostile)
        .await
        .expect("connect");
    let reply = liar
        .call(
            "auth",
            &json!({"id": 5, "name": "x", "token2": "v1.e30.AAAA"}),
        )
        .await
        .expect("answered");
    assert_eq!(reply["errorCode"], 1003, "{reply}");
    assert!(liar.closed_within(WAIT).await, "cut after a failed auth");

    // Opens engine.io but never the namespace (and answers no ping).
    let mut engine = SioConn::engine(&addr, &SioOptions::default())
        .await
        .expect("engine.io");
    let ended =
        tokio::time::timeout(WAIT, async { while engine.next_frame().await.is_ok() {} }).await;
    assert!(
        ended.is_ok(),
        "an engine.io session without a namespace is closed"
    );

    // A TCP connection that never sends a request.
    let silent = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    assert!(raw_closed(silent).await, "an idle TCP connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_told_closed_or_renewed() {
    let cluster = start(&[]).await;
    let addr = sio(&cluster);
    let short = SioOptions {
        auth: Some(json!({"token": token(41, 2)})),
        ..SioOptions::default()
    };
    let mut expiring = SioClient::connect_with(&addr, short)
        .await
        .expect("connect");
    let mut renewed = SioClient::connect_with(
        &addr,
        SioOptions {
            auth: Some(json!({"token": token(42, 2)})),
            ..SioOptions::default()
        },
    )
    .await
    .expect("connect");
    let reply = renewed
        .call(
            "auth",
            &json!({"id": 42, "name": "test", "token2": token(42, 600)}),
        )
        .await
        .expect("renewal answered");
    assert_eq!(reply["success"], true, "{reply}");

    let notice: Value = expiring
        .next_event("server_disconnect", WAIT)
        .await
        .expect("told that the token expired");
    assert_eq!(notice["data"]["reason"], "token_expired", "{notice}");
    assert_eq!(notice["data"]["reconnect"], "ticket", "{notice}");
    assert!(expiring.closed_within(WAIT).await, "closed once expired");
    assert!(
        !renewed.closed_within(Duration::from_secs(2)).await,
        "a renewed connection outlives its first token"
    );
    let still = client(&cluster, 43, SioOptions::default()).await;
    assert!(still.is_open());
}

/// `namespace_closed_session`: a client that closes the namespace (`41`) but keeps its
/// engine.io session open, answering every ping, is cut: the session carries nothing any
/// more, and kept alive it would be counted nowhere and moved by no drain. A long-polling one
/// finds its session id refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_closed_session() {
    use gru_testkit::sio::{Eio, Polling};
    // A poll held by the server when the `41` is handled is answered at the next ping only
    // (the session id is refused from the poll after it): a one-second ping keeps that wait
    // well inside `WAIT` (at the default 25 s it outlasted it on a loaded CI machine).
    let cluster = start(&[("GRU_SPEAR__PING_INTERVAL_MS", "1000")]).await;
    let mut ws = client(&cluster, 71, SioOptions::default()).await;
    ws.emit_raw("41");
    assert!(
        ws.closed_within(WAIT).await,
        "a WebSocket session without its namespace is cut"
    );
    let (mut polling, _) = Polling::open(&sio(&cluster), Eio::V4, None)
        .await
        .expect("open");
    polling
        .connect(Some(&json!({"token": token(72, 600)})))
        .await
        .expect("connect");
    let (status, body) = polling.post(&["41"]).await.expect("41 posted");
    assert_eq!(status, 200, "{body}");
    // The session ends once the spear has handled the `41`; a poll that was answered before
    // that (loaded machine) may carry a ping, and nothing else.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = polling.get().await.expect("a poll");
        if status == 400 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            body.split('\u{1e}').all(|packet| packet == "2"),
            "only pings before the end of the session: {body:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session is still open after {WAIT:?}"
        );
    }
}
