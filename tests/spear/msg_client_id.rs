//! `msg_client_id`: a `msg` sent again with the same `clientMsgId` is answered with the first
//! send's ack and delivered once — on the same spear, and on another spear after the first
//! was killed (the ids are kept in Redis with the history). Unicast and group alike; the same
//! id with another content is refused (1003). A send whose spear was killed before it could
//! answer is sent again on another spear: whether or not the first attempt was stored, its
//! recipients get it exactly once.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

const WAIT: Duration = Duration::from_secs(10);
const ALICE: u64 = 4101;
const BOB: u64 = 4102;
const CAROL: u64 = 4103;
const GROUP: u64 = 41;

fn msg(kind: u64, to: u64, content: &str, client_msg_id: &str) -> Value {
    json!({"type": kind, "target": {"id": to}, "content": content, "clientMsgId": client_msg_id})
}

/// The ack of `payload`, sent as Gru's clients do (a JSON string).
async fn send(c: &SioClient, payload: &Value) -> Value {
    c.call("msg", &Value::String(payload.to_string()))
        .await
        .expect("msg ack")
}

/// The contents of the `msg` events `c` receives up to and including `last`, in order.
async fn received_until(c: &mut SioClient, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(m) = c.next_event("msg", WAIT).await {
        let content = m["content"].as_str().unwrap_or_default().to_string();
        got.push(content.clone());
        if content == last {
            return got;
        }
    }
    panic!("no {last:?} within {WAIT:?}; received {got:?}");
}

/// `uid` on spear `node`, in the group if `in_group`.
async fn connect(cluster: &TestCluster, node: u64, uid: u64, in_group: bool) -> SioClient {
    let token = spear_token(uid, vec![node], gru::clock::unix_ms() / 1000 + 600);
    let c = SioClient::connect(&cluster.sio_addr(node), Some(json!({"token": token})))
        .await
        .expect("connects");
    if in_group {
        c.join(GROUP).await;
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_client_id() {
    let mut cluster = TestCluster::builder()
        .nodes(&[1, 2, 3], &["core", "spear", "ticket"])
        .options(ClusterOptions::default())
        .launch()
        .await;
    let mut bob = connect(&cluster, 2, BOB, false).await;
    let mut carol = connect(&cluster, 2, CAROL, true).await;
    let alice = connect(&cluster, 3, ALICE, true).await;

    // On the same spear: the resend gets the first ack, byte for byte.
    let first = send(&alice, &msg(0, BOB, "m1", "a-1")).await;
    assert_eq!(first["success"], true, "{first}");
    assert!(first["data"]["position"].as_u64().is_some(), "{first}");
    let again = send(&alice, &msg(0, BOB, "m1", "a-1")).await;
    assert_eq!(again, first, "a resend on the same spear");
    // The same id for another message is refused, and sends nothing.
    let reused = send(&alice, &msg(0, BOB, "not m1", "a-1")).await;
    assert_eq!(reused["errorCode"], 1003, "{reused}");
    assert!(
        reused["msg"].as_str().unwrap_or_default().contains("a-1"),
        "{reused}"
    );
    // A bad id is refused before anything is sent.
    let long = send(&alice, &msg(0, BOB, "m", &"x".repeat(65))).await;
    assert_eq!(long["errorCode"], 1003, "{long}");
    let group_first = send(&alice, &msg(1, GROUP, "g1", "a-2")).await;
    assert_eq!(group_first["success"], true, "{group_first}");
    assert_eq!(send(&alice, &msg(1, GROUP, "g1", "a-2")).await, group_first);

    // A send whose spear dies under it: no ack is awaited.
    alice.emit_raw(&format!(
        "42{}",
        json!(["msg", msg(0, BOB, "m3", "a-3").to_string()])
    ));
    cluster.kill(3);

    // On another spear, after the first was killed: the first acks again, nothing twice.
    let alice = connect(&cluster, 1, ALICE, true).await;
    assert_eq!(
        send(&alice, &msg(0, BOB, "m1", "a-1")).await,
        first,
        "a resend on another spear"
    );
    assert_eq!(
        send(&alice, &msg(1, GROUP, "g1", "a-2")).await,
        group_first,
        "a group resend on another spear"
    );
    // Stored or not before the kill, the third is acknowledged now, with a position.
    let third = send(&alice, &msg(0, BOB, "m3", "a-3")).await;
    assert_eq!(third["success"], true, "{third}");
    assert_eq!(send(&alice, &msg(0, BOB, "m3", "a-3")).await, third);
    assert_eq!(
        send(&alice, &msg(0, BOB, "end", "a-4")).await["success"],
        true
    );
    assert_eq!(
        send(&alice, &msg(1, GROUP, "g-end", "a-5")).await["success"],
        true
    );

    eprintln!("msg_client_id: first {first}, group {group_first}, third {third}");
    // Each recipient got each message once, in order.
    assert_eq!(received_until(&mut bob, "end").await, ["m1", "m3", "end"]);
    assert_eq!(received_until(&mut carol, "g-end").await, ["g1", "g-end"]);
    // With the Redis relay the history's script published each message in the round trip
    // that stored it.
    let relay: Value = cluster
        .get(1, "/api/v1/relay")
        .await
        .expect("spear 1 answers")
        .json()
        .await
        .expect("JSON");
    assert!(
        relay["with_history"].as_u64() >= Some(3),
        "published with the history: {relay}"
    );
    // Positions: m3 right after m1 in Bob's channel, so neither a second copy nor a gap.
    assert_eq!(
        third["data"]["position"].as_u64(),
        first["data"]["position"].as_u64().map(|p| p + 1),
        "m1 {first}, m3 {third}"
    );
}
