//! `spear_e2e_rust`: the Gru journey through ticket and a spear of a real cluster, with a Rust
//! socket.io client: auth, subscribe, unicast, group broadcast (sender included), online, a bad
//! token refused, an event before auth disconnecting, the modern handshake, and a graceful
//! spear shutdown that tells clients to reconnect through ticket.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::{SioClient, SioError};
use gru_testkit::tickets::{authed, ticket};
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_e2e_rust() {
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "ticket"])
        .cores(&[2, 3])
        .spears(&[4])
        .launch()
        .await;

    let mut alice = authed(&cluster, 1, 2001, "alice").await;
    let mut bob = authed(&cluster, 1, 2002, "bob").await;
    for (client, uid) in [(&alice, 2001), (&bob, 2002)] {
        let sub = client
            .call(
                "subscribe",
                &json!({"userId": uid, "subscribeGroups": [{"id": 10, "name": "class"}]}),
            )
            .await
            .expect("subscribe ack");
        assert_eq!(sub["success"], true, "{sub}");
    }
    assert_eq!(
        alice
            .next_event("subscribe_result", WAIT)
            .await
            .map(|r| r["errorCode"].clone()),
        Some(json!(0))
    );

    let sent = alice
        .call(
            "msg",
            &json!({"type": 0, "target": {"id": 2002, "type": 1}, "content": "hi bob"})
                .to_string()
                .into(),
        )
        .await
        .expect("msg ack");
    assert_eq!(
        (sent["success"].clone(), sent["msg"].clone()),
        (json!(true), json!("received"))
    );
    let got = bob
        .next_event("msg", WAIT)
        .await
        .expect("bob gets the unicast");
    assert_eq!(
        (got["content"].clone(), got["fromId"].clone()),
        (json!("hi bob"), json!(2001))
    );
    assert_eq!(got["id"], sent["data"]["id"]);

    bob.call(
        "msg",
        &json!({"type": 1, "target": {"id": 10}, "content": "hi class"}),
    )
    .await
    .expect("group msg ack");
    for client in [&mut alice, &mut bob] {
        let m = client.next_event("msg", WAIT).await.expect("group message");
        assert_eq!(m["content"], "hi class");
        assert_eq!(m["target"], json!({"id": "10", "type": -1}));
    }
    let online = alice
        .call("online", &json!("10"))
        .await
        .expect("online ack");
    assert_eq!(online["data"]["userIds"], json!([2001, 2002]));

    // The spear counts what it carries; the leader says it issued the two messages' ids.
    let counts = json_of(&cluster, 4, "/api/v1/spear").await;
    assert_eq!(
        [
            &counts["connections"],
            &counts["users"],
            &counts["groups"],
            &counts["messages_in"]
        ],
        [&json!(2), &json!(2), &json!(1), &json!(2)],
        "{counts}"
    );
    // The unicast reached bob's room, the group message the group's: one each here.
    assert_eq!(counts["messages_out"], 2, "{counts}");
    assert_eq!(counts["relay"]["kind"], "local", "{counts}");
    let mut issuers = Vec::new();
    for id in [1, 2, 3] {
        let idgen = json_of(&cluster, id, "/api/v1/idgen").await;
        if idgen["issuing"] == true {
            assert!(idgen["ids_issued"].as_u64() >= Some(2), "{idgen}");
            assert!(idgen["issuer_since_ms"].as_u64() > Some(0), "{idgen}");
            assert_eq!(idgen["leader_changes"], 1, "{idgen}");
            issuers.push(id);
        }
    }
    assert_eq!(issuers.len(), 1, "one strict issuer: {issuers:?}");

    // One connection is one user: authenticating again as someone else is refused.
    let (_, bobs_token) = ticket(&cluster, 1, 2002, "bob").await;
    let again = alice
        .call(
            "auth",
            &json!({"id": 2002, "name": "bob", "token2": bobs_token}),
        )
        .await
        .expect("auth ack");
    assert_eq!(again["errorCode"], 1002, "{again}");
    let online = alice
        .call("online", &json!("10"))
        .await
        .expect("online ack");
    assert_eq!(
        online["data"]["userIds"],
        json!([2001, 2002]),
        "alice is still alice"
    );

    // A bad token: refused with 1003, connection closed.
    let (addr, token2) = ticket(&cluster, 1, 2003, "carol").await;
    let mut carol = SioClient::connect(&addr, None).await.expect("connect");
    let reply = carol
        .call(
            "auth",
            &json!({"id": 2003, "name": "carol", "token2": format!("{token2}x")}),
        )
        .await
        .expect("auth ack");
    assert_eq!(reply["errorCode"], 1003);
    assert!(
        carol.closed_within(WAIT).await,
        "a refused auth closes the connection"
    );

    // An event before auth: refused, connection closed.
    let mut early = SioClient::connect(&addr, None).await.expect("connect");
    let reply = early.call("online", &json!("10")).await.expect("ack");
    assert_eq!(reply["errorCode"], 1003);
    assert!(early.closed_within(WAIT).await);

    // The modern handshake: the token in the socket.io auth payload.
    let modern = SioClient::connect(&addr, Some(json!({"token": token2})))
        .await
        .expect("handshake auth");
    let joined = modern
        .call("join", &json!({"groups": [10]}))
        .await
        .expect("join ack");
    assert_eq!(joined["success"], true);
    let online = modern.call("online", &json!(10)).await.expect("online");
    assert_eq!(online["data"]["userIds"], json!([2001, 2002, 2003]));
    let expired = spear_token(2004, vec![4], 1);
    let refused = SioClient::connect(&addr, Some(json!({"token": expired})))
        .await
        .err();
    assert!(
        refused
            .as_ref()
            .and_then(SioError::refusal)
            .is_some_and(|m| m.contains("1003")),
        "an expired handshake token is refused"
    );

    // A graceful stop tells clients to reconnect through ticket, then closes.
    assert!(cluster.stop(4), "spear exits cleanly");
    let notice: Option<Value> = alice.next_event("server_shutdown", WAIT).await;
    assert_eq!(
        notice.map(|n| n["reconnect"].clone()),
        Some(json!("ticket"))
    );
    assert!(alice.closed_within(WAIT).await);
}

/// `spear_first_event_not_lost`: an event sent the instant the connect packet arrives is
/// handled. (The handlers used to be registered after socketioxide sent the connect packet,
/// and a quick client's first event found no handler; `gru bench connections`, now `gru-bench connections`, hung on it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_first_event_not_lost() {
    let mut cluster =
        TestCluster::single_spear(gru_testkit::gru(), ClusterOptions::default()).await;
    let (addr, _) = ticket(&cluster, 1, 1, "probe").await;
    let now = gru::clock::unix_ms() / 1000;
    for uid in 0..300u64 {
        let token = spear_token(10_000 + uid, vec![1], now + 600);
        let client = SioClient::connect(&addr, Some(json!({"token": token})))
            .await
            .expect("connect");
        let joined = client.call("join", &json!({"groups": [1]})).await;
        assert!(
            joined.as_ref().is_ok_and(|r| r["success"] == true),
            "connection {uid}: the first event got {joined:?}"
        );
    }
    cluster.stop(1);
}

/// The JSON answer of `GET path` on node `id`.
async fn json_of(cluster: &TestCluster, id: u64, path: &str) -> Value {
    let resp = cluster.get(id, path).await.expect("node answers");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("a JSON answer")
}
