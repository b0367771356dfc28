//! engine.io itself: the open packet, the server's ping (engine.io 4) and the client's
//! (engine.io 3), and the end of a session whose heartbeat fails.

use std::time::Duration;

use serde_json::Value;

use crate::node::{same, sio, start, token, PATHS};
use crate::raw::{Next, Raw};

/// A one-second heartbeat, so that a missed beat shows within a test's patience.
const BEAT: &[(&str, &str)] = &[
    ("GRU_SPEAR__PING_INTERVAL_MS", "1000"),
    ("GRU_SPEAR__PING_TIMEOUT_MS", "1000"),
    ("GRU_SPEAR__MAX_PAYLOAD_BYTES", "4096"),
];

/// A generous deadline for what the heartbeat should do within about two seconds.
const PATIENCE: Duration = Duration::from_secs(6);

/// The fields of an open packet that do not change from one session to the next.
fn open_fields(open: &str) -> Value {
    let mut fields: Value = serde_json::from_str(&open[1..]).expect("the open packet is JSON");
    let sid = fields["sid"].as_str().expect("a session id").to_string();
    fields["sid"] = Value::from(format!("{} characters", sid.len()));
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_packet() {
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, BEAT).await;
        let (_, v4) = Raw::open(&sio(&cluster), 4).await;
        let (mut v3_conn, v3) = Raw::open(&sio(&cluster), 3).await;
        // socket.io 4 (engine.io 3) joins the default namespace with the session.
        let joined = v3_conn.next_text(PATIENCE).await;
        seen.push((path, (open_fields(&v4), open_fields(&v3), joined)));
    }
    let (v4, v3, joined) = same(&seen);
    assert_eq!(v4["pingInterval"], 1000, "{v4}");
    assert_eq!(v4["pingTimeout"], 1000, "{v4}");
    assert_eq!(v4["maxPayload"], 4096, "{v4}");
    assert_eq!(v4["sid"], "16 characters", "{v4}");
    assert_eq!(v4, v3);
    assert_eq!(joined, Ok("40".to_string()));
}

/// engine.io 4: the server pings every interval, and a client that stops answering is gone
/// within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ping_and_missed_pong() {
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, BEAT).await;
        let (mut raw, _) = Raw::open(&sio(&cluster), 4).await;
        raw.send_text(&format!(r#"40{{"token":"{}"}}"#, token(7)))
            .await;
        let connected = raw
            .packet(PATIENCE)
            .await
            .map(|t| t.starts_with(r#"40{"sid":""#));
        // Skip what authentication sends; the first ping comes within the interval.
        let mut pings = 0;
        while pings < 2 {
            match raw.next_text(PATIENCE).await {
                Ok(text) if text == "2" => {
                    pings += 1;
                    if pings == 1 {
                        raw.send_text("3").await;
                    }
                }
                Ok(_) => {}
                Err(other) => panic!("{path}: no ping: {other:?}"),
            }
        }
        // The second ping goes unanswered.
        let end = raw.end(PATIENCE).await;
        seen.push((path, (connected, end)));
    }
    let (connected, end) = same(&seen);
    assert_eq!(connected, Ok(true));
    assert_ne!(
        end,
        Next::Quiet,
        "a client that stops answering pings is closed"
    );
}

/// engine.io 3: the client pings and the server answers; a client that stops pinging is gone
/// within the interval and the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ping_and_silence() {
    let mut seen = Vec::new();
    for path in PATHS {
        let cluster = start(path, BEAT).await;
        let (mut raw, _) = Raw::open(&sio(&cluster), 3).await;
        let joined = raw.next_text(PATIENCE).await;
        raw.send_text("2").await;
        let pong = raw.next_text(PATIENCE).await;
        let quiet_first = raw.next(Duration::from_millis(500)).await;
        let end = raw.end(PATIENCE).await;
        seen.push((path, (joined, pong, quiet_first, end)));
    }
    let (joined, pong, quiet_first, end) = same(&seen);
    assert_eq!(joined, Ok("40".to_string()));
    assert_eq!(pong, Ok("3".to_string()));
    assert_eq!(
        quiet_first,
        Next::Quiet,
        "the server does not ping an engine.io 3 client"
    );
    assert_ne!(end, Next::Quiet, "a client that stops pinging is closed");
}
