//! `spear_bad_input`: every event × (malformed JSON, wrong types, missing fields, oversized
//! payload, unknown event, forged/expired token) gets the documented answer (docs/api.md):
//! before auth every event but `auth` is refused with 1003 and the connection closed; after
//! auth bad input gets 1003 and the connection stays; an oversized packet is closed by the
//! transport; the server stays alive throughout.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tickets::{authed, ticket};
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

const WAIT: Duration = Duration::from_secs(5);
const EVENTS: [&str; 6] = ["auth", "subscribe", "msg", "online", "join", "leave"];

fn bad_payloads(event: &str) -> Vec<(&'static str, Value)> {
    let mut cases = vec![
        ("malformed JSON", json!("{not json")),
        ("empty object", json!({})),
        ("null", Value::Null),
        ("array", json!([1, 2])),
    ];
    let wrong = match event {
        "auth" => json!({"id": "abc", "name": 5}),
        "subscribe" => json!({"userId": "x", "subscribeGroups": "10"}),
        "msg" => json!({"type": "zero", "target": 5, "content": 1}),
        "online" => json!({"groupId": "ten"}),
        _ => json!({"groups": "10"}),
    };
    cases.push(("wrong types", wrong));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_bad_input() {
    let mut cluster =
        TestCluster::single_spear(gru_testkit::gru(), ClusterOptions::default()).await;
    let (addr, _) = ticket(&cluster, 1, 3000, "probe").await;

    // Before auth: every event but `auth` is refused and the connection closed.
    for event in EVENTS
        .iter()
        .filter(|e| **e != "auth")
        .chain(&["no_such_event"])
    {
        let mut c = SioClient::connect(&addr, None).await.expect("connect");
        let reply = c
            .call(event, &json!({"userId": 1}))
            .await
            .expect("answered");
        assert_eq!(reply["errorCode"], 1003, "{event} before auth: {reply}");
        assert!(
            c.closed_within(WAIT).await,
            "{event} before auth closes the connection"
        );
    }
    // Bad auth payloads and forged or expired tokens: 1003, connection closed.
    let now = gru::clock::unix_ms() / 1000;
    let mut bad_auth: Vec<(&str, Value)> = bad_payloads("auth");
    bad_auth.push((
        "forged token",
        json!({"id": 3001, "name": "x", "token2": "v1.eyJ9.AAAA"}),
    ));
    bad_auth.push((
        "expired token",
        json!({"id": 3001, "name": "x", "token2": spear_token(3001, vec![1], now - 1)}),
    ));
    bad_auth.push((
        "token for another spear",
        json!({"id": 3001, "name": "x", "token2": spear_token(3001, vec![9], now + 60)}),
    ));
    bad_auth.push((
        "token for another user",
        json!({"id": 3002, "name": "x", "token2": spear_token(3001, vec![1], now + 60)}),
    ));
    for (case, payload) in bad_auth {
        let mut c = SioClient::connect(&addr, None).await.expect("connect");
        let reply = c.call("auth", &payload).await.expect("answered");
        assert_eq!(reply["errorCode"], 1003, "auth with {case}: {reply}");
        assert!(
            c.closed_within(WAIT).await,
            "auth with {case} closes the connection"
        );
    }

    // After auth: bad input is answered with 1003 and the connection stays.
    let mut c = authed(&cluster, 1, 3001, "ok").await;
    for event in EVENTS.iter().filter(|e| **e != "auth") {
        for (case, payload) in bad_payloads(event) {
            let reply = c.call(event, &payload).await.expect("answered");
            assert_eq!(reply["errorCode"], 1003, "{event} with {case}: {reply}");
            assert!(c.is_open(), "{event} with {case} keeps the connection");
        }
    }
    let reply = c.call("no_such_event", &json!({})).await.expect("answered");
    assert_eq!(reply["errorCode"], 1003, "unknown event");
    let reply = c
        .call(
            "subscribe",
            &json!({"userId": 9999, "subscribeGroups": [{"id": 1}]}),
        )
        .await
        .expect("answered");
    assert_eq!(reply["errorCode"], 1003, "subscribing someone else");
    let reply = c
        .call("subscribe", &json!({"userId": 3001, "subscribeGroups": []}))
        .await
        .expect("answered");
    assert_eq!(reply["errorCode"], 1003, "an empty group list");
    let too_many: Vec<Value> = (0..101).map(|g| json!({"id": g})).collect();
    let reply = c
        .call(
            "subscribe",
            &json!({"userId": 3001, "subscribeGroups": too_many}),
        )
        .await
        .expect("answered");
    assert_eq!(reply["errorCode"], 1002, "more groups than allowed");
    let mut limited = 0;
    for i in 0..60 {
        let reply = c
            .call(
                "msg",
                &json!({"type": 0, "target": {"id": 3001}, "content": format!("{i}")}),
            )
            .await
            .expect("answered");
        if reply["errorCode"] == 1002 {
            limited += 1;
        }
    }
    assert!(
        limited > 0,
        "60 messages at once hit the 50-per-second limit"
    );
    assert!(c.is_open());

    // An oversized packet is closed by the transport.
    let big = "x".repeat(70 * 1024);
    c.emit(
        "msg",
        &json!({"type": 0, "target": {"id": 3001}, "content": big}),
    );
    assert!(
        c.closed_within(WAIT).await,
        "a payload over spear.max_payload_bytes closes the connection"
    );

    // The server is alive and serving.
    let health: Value = reqwest::get(format!("http://{}/healthz", cluster.http_addr(1)))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let fresh = authed(&cluster, 1, 3003, "after").await;
    let online = fresh.call("online", &json!("1")).await.expect("online");
    assert_eq!(online["success"], true);
    assert!(cluster.stop(1), "the node still shuts down cleanly");
}
