//! The long-polling transport probed as an attacker and a bad network would: a client that
//! stops polling (its last long-poll still open), a POST over the payload limit, a session id
//! of another client presented from another address, and the id of a session the spear
//! closed. Each must cost the spear nothing lasting: the session ends, the others go on.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::node::{sio, start, token, NODE};
use gru_testkit::sio::{Eio, Polling};
use gru_testkit::TestCluster;

/// Open socket.io connections of the spear (`GET /api/v1/spear`).
async fn connections(cluster: &TestCluster) -> u64 {
    let body: Value = cluster
        .get(NODE, "/api/v1/spear")
        .await
        .expect("the spear answers")
        .json()
        .await
        .expect("json");
    body["connections"].as_u64().expect("connections")
}

/// A polling session of `uid` authenticated in the handshake (v4) or with `auth` (v3).
async fn authed(cluster: &TestCluster, eio: Eio, uid: u64) -> Polling {
    let (mut s, _) = Polling::open(&sio(cluster), eio, None).await.expect("open");
    match eio {
        Eio::V4 => {
            s.connect(Some(&json!({"token": token(uid, 600)})))
                .await
                .expect("connect");
            let answer = s
                .event("auth_result", Duration::from_secs(10))
                .await
                .expect("auth_result");
            assert_eq!(answer["success"], true, "{answer}");
        }
        Eio::V3 => {
            s.connect(None).await.expect("connect");
            let auth = json!({"id": uid, "name": "test", "token2": token(uid, 600)});
            let reply = s.call("auth", &auth).await.expect("auth");
            assert_eq!(reply["success"], true, "{reply}");
        }
    }
    s
}

/// A client that stops polling, its last long-poll left open (v4), or never answered (v3: the
/// client pings, and this one does not): the spear answers that poll and ends the session
/// within its heartbeat, and the connection leaves the spear's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_client_that_stops_polling_is_closed() {
    let cluster = start(&[
        ("GRU_SPEAR__PING_INTERVAL_MS", "1000"),
        ("GRU_SPEAR__PING_TIMEOUT_MS", "1000"),
    ])
    .await;
    for (eio, uid) in [(Eio::V4, 41), (Eio::V3, 42)] {
        let s = authed(&cluster, eio, uid).await;
        assert_eq!(connections(&cluster).await, 1, "{eio:?}");
        let start = Instant::now();
        // The last long-poll: held by the spear until it has something to say.
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), s.get())
            .await
            .unwrap_or_else(|_| panic!("{eio:?}: a long-poll was never answered"))
            .expect("poll");
        assert_eq!(status, 200, "{eio:?}: {body}");
        // No pong, no ping, no further poll: the session ends within interval + timeout.
        cluster
            .wait_for("the session to end", Duration::from_secs(10), || async {
                (connections(&cluster).await == 0).then_some(())
            })
            .await;
        let (status, body) = s.get().await.expect("poll after the end");
        assert_eq!(status, 400, "{eio:?}: the ended session is unknown: {body}");
        eprintln!(
            "{eio:?}: ended {:?} after the last poll began",
            start.elapsed()
        );
    }
}

/// A POST larger than `spear.max_payload_bytes` is refused (413) before it is buffered whole,
/// and ends its session; another client's session is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_post_over_the_payload_limit() {
    let cluster = start(&[("GRU_SPEAR__MAX_PAYLOAD_BYTES", "4096")]).await;
    let mut bystander = authed(&cluster, Eio::V4, 51).await;
    for (eio, uid) in [(Eio::V4, 52), (Eio::V3, 53)] {
        let s = authed(&cluster, eio, uid).await;
        let huge = format!(
            "42[\"msg\",{}]",
            json!({"type": 0, "target": {"id": uid}, "content": "x".repeat(1 << 20)})
        );
        let (status, _) = s.post(&[&huge]).await.expect("an answer");
        assert_eq!(status, 413, "{eio:?}");
        // On a new connection: the spear closes the one whose body it did not read.
        let again = Polling::with_sid(&sio(&cluster), eio, s.sid(), None);
        let (status, body) = again.get().await.expect("poll");
        assert_eq!(status, 400, "{eio:?}: the session ended: {body}");
    }
    let msg = json!({"type": 0, "target": {"id": 51}, "content": "still here"});
    let reply = bystander
        .call("msg", &Value::String(msg.to_string()))
        .await
        .expect("the other session goes on");
    assert_eq!(reply["success"], true, "{reply}");
}

/// A session id is the secret of the client that opened the session: presented from another
/// address it is refused like an unknown one, and the session goes on undisturbed; the id of
/// a session the spear closed is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_session_ids_of_others_and_of_closed_sessions() {
    let cluster = start(&[]).await;
    let mut victim = authed(&cluster, Eio::V4, 61).await;
    let stranger_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let stranger = Polling::with_sid(&sio(&cluster), Eio::V4, victim.sid(), Some(stranger_ip));
    let (status, body) = stranger.get().await.expect("an answer");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Session ID unknown"), "{body}");
    let forged = r#"42["msg",{"type":0,"target":{"id":62},"content":"forged"}]"#;
    let (status, body) = stranger.post(&[forged]).await.expect("an answer");
    assert_eq!(status, 400, "{body}");
    let reply = victim
        .call("join", &json!({"groups": [6]}))
        .await
        .expect("the victim's session goes on");
    assert_eq!(reply["success"], true, "{reply}");

    // An unknown id, and one the spear closed (an event before authentication closes it): the
    // client can still read why during the grace time, then its id is refused.
    let nobody = Polling::with_sid(&sio(&cluster), Eio::V4, "AAAAAAAAAAAAAAAA", None);
    assert_eq!(nobody.get().await.expect("an answer").0, 400);
    let (mut s, _) = Polling::open(&sio(&cluster), Eio::V4, None)
        .await
        .expect("open");
    s.connect(None).await.expect("connect");
    let reply = s
        .call("join", &json!({"groups": [6]}))
        .await
        .expect("refused with an answer");
    assert_eq!(reply["errorCode"], 1003, "{reply}");
    let closed = Polling::with_sid(&sio(&cluster), Eio::V4, s.sid(), None);
    cluster
        .wait_for(
            "the closed session refused",
            Duration::from_secs(10),
            || async {
                // A poll sent during the grace time is held like any other: try again.
                let poll = tokio::time::timeout(Duration::from_secs(2), closed.get());
                let (status, _) = poll.await.ok()?.ok()?;
                (status == 400).then_some(())
            },
        )
        .await;
}
