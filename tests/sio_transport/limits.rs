//! What a client meets at the transport's limits: a message over `maxPayload`, a binary
//! attachment announced in a header, a frame sent in halves (and one never finished), an
//! unknown packet type, a binary frame, its own close, and stopping to read.

use std::time::Duration;

use serde_json::json;

use crate::node::{same, sio, start, token, PATHS};
use crate::raw::{frame, Next, Raw};
use gru_testkit::sio::{SioClient, SioOptions};

const LIMITS: &[(&str, &str)] = &[
    ("GRU_SPEAR__PING_INTERVAL_MS", "1000"),
    ("GRU_SPEAR__PING_TIMEOUT_MS", "1000"),
    ("GRU_SPEAR__MAX_PAYLOAD_BYTES", "4096"),
];

const PATIENCE: Duration = Duration::from_secs(6);

/// An authenticated engine.io 4 session, past its connect and its `auth_result`.
async fn session(addr: &str, uid: u64) -> Raw {
    let (mut raw, _) = Raw::open(addr, 4).await;
    raw.send_text(&format!(r#"40{{"token":"{}"}}"#, token(uid)))
        .await;
    for _ in 0..2 {
        let text = raw.packet(PATIENCE).await.expect("connect and auth_result");
        assert!(
            text.starts_with("40") || text.contains("auth_result"),
            "{text}"
        );
    }
    raw
}

/// How each path ends a session that sends `what` after authenticating.
async fn ending(what: &[u8]) -> Next {
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, LIMITS).await;
        let mut raw = session(&sio(&cluster), 5).await;
        raw.send_raw(what).await;
        seen.push((path, raw.end(PATIENCE).await));
    }
    same(&seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_payload_closes_the_session() {
    let content = "a".repeat(5000);
    let msg = format!(r#"42["msg",{{"type":0,"target":{{"id":6}},"content":"{content}"}}]"#);
    let end = ending(&frame(0x1, true, msg.as_bytes())).await;
    assert_ne!(end, Next::Quiet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_attachment_is_refused_at_its_header() {
    let header = r#"451-["msg",{"_placeholder":true,"num":0}]"#;
    let end = ending(&frame(0x1, true, header.as_bytes())).await;
    assert_ne!(end, Next::Quiet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_packet_type_closes_the_session() {
    assert_ne!(ending(&frame(0x1, true, b"9")).await, Next::Quiet);
    assert_ne!(ending(&frame(0x1, true, b"49")).await, Next::Quiet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_closes_the_session() {
    assert_ne!(ending(&frame(0x2, true, &[1, 2, 3])).await, Next::Quiet);
}

/// A client's close is answered and the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_ends_the_session() {
    let end = ending(&frame(0x8, true, &1000u16.to_be_bytes())).await;
    assert_ne!(end, Next::Quiet);
}

/// A frame in two halves is one packet; a frame never finished leaves the client unable to
/// answer pings, and the session ends with the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame() {
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, LIMITS).await;
        let mut raw = session(&sio(&cluster), 5).await;
        let online = frame(0x1, true, br#"421["online",{"groupId":3}]"#);
        let (head, tail) = online.split_at(5);
        raw.send_raw(head).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        raw.send_raw(tail).await;
        let mut answer = None;
        while answer.is_none() {
            match raw.packet(PATIENCE).await {
                Ok(text) if text.starts_with("431") => answer = Some(text),
                Ok(_) => {}
                Err(other) => panic!("{path}: no answer to the online: {other:?}"),
            }
        }
        let unfinished = frame(0x1, true, br#"42["online",{"groupId":3}]"#);
        raw.send_raw(&unfinished[..6]).await;
        seen.push((path, (answer, raw.end(PATIENCE).await)));
    }
    let (answer, end) = same(&seen);
    assert_eq!(
        answer.as_deref(),
        Some(r#"431[{"success":true,"errorCode":0,"msg":"ok","data":{"groupId":3,"userIds":[]}}]"#)
    );
    assert_ne!(end, Next::Quiet);
}

/// A group member that stops reading is cut once a write to it stalls; the sender keeps
/// getting every acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading() {
    const GROUP: u64 = 9;
    const MESSAGES: usize = 300;
    let env = [
        ("GRU_SPEAR__WRITE_TIMEOUT_MS", "1000"),
        ("GRU_SPEAR__MAX_PAYLOAD_BYTES", "65536"),
        ("GRU_SPEAR__MAX_MSGS_PER_SEC", "5000"),
        ("GRU_SPEAR__MAX_HISTORY_BYTES_PER_MIN", "1073741824"),
    ];
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, &env).await;
        let addr = sio(&cluster);
        let with = |uid: u64, recv_buffer: Option<u32>| SioOptions {
            auth: Some(json!({"token": token(uid)})),
            recv_buffer,
            ..SioOptions::default()
        };
        let sender = SioClient::connect_with(&addr, with(1, None))
            .await
            .expect("sender");
        let stuck = SioClient::connect_with(&addr, with(2, Some(4096)))
            .await
            .expect("stuck");
        sender.join(GROUP).await;
        stuck.join(GROUP).await;
        stuck.stop_reading();
        let content = "m".repeat(16 * 1024);
        let mut refused = 0;
        for _ in 0..MESSAGES {
            let msg = json!({"type": 1, "target": {"id": GROUP}, "content": content});
            let reply = sender.call("msg", &msg).await.expect("an ack");
            if reply["errorCode"] != 0 {
                refused += 1;
            }
        }
        // The client reads nothing, so it sees nothing: the kernel tells whether the server
        // cut its TCP connection.
        let cut = gru_testkit::wait::poll("the stuck client cut", Duration::from_secs(10), || {
            std::future::ready((!stuck.tcp_established()).then_some(()))
        })
        .await
        .is_ok();
        seen.push((path, (refused, cut, sender.is_open())));
    }
    assert_eq!(same(&seen), (0, true, true));
}
