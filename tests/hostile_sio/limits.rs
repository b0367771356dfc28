//! Per-connection and per-address limits, and answers that stay the server's own: rate limits
//! survive a second `auth`, a burst of requests gets every reply, a bad second `auth` changes
//! nothing, repeated group ids count once, library messages never reach a client, and one IP
//! address can hold only so many connections.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};

use crate::node::{client, sio, start, token};
use gru_testkit::sio::{SioClient, SioOptions};

fn msg(to: u64) -> Value {
    json!({"type": 0, "target": {"id": to}, "content": "x"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_auth_does_not_reset_the_message_rate() {
    let cluster = start(&[("GRU_SPEAR__MAX_MSGS_PER_SEC", "5")]).await;
    let c = client(&cluster, 11, SioOptions::default()).await;
    let mut before = 0;
    for _ in 0..5 {
        if c.call("msg", &msg(11)).await.expect("ack")["success"] == true {
            before += 1;
        }
    }
    let reply = c
        .call(
            "auth",
            &json!({"id": 11, "name": "test", "token2": token(11, 600)}),
        )
        .await
        .expect("auth ack");
    assert_eq!(reply["success"], true, "{reply}");
    let mut after = 0;
    for _ in 0..5 {
        let reply = c.call("msg", &msg(11)).await.expect("ack");
        if reply["success"] == true {
            after += 1;
        } else {
            assert_eq!(reply["errorCode"], 1002, "{reply}");
        }
    }
    assert_eq!(before, 5, "the first five fit the limit");
    // Five per second: a sixth can only come from time passing (200 ms per message).
    assert!(
        after <= 1,
        "{after} more messages passed right after a second auth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_requests_gets_every_reply_and_internals_stay_inside() {
    let cluster = start(&[]).await;
    let c = client(&cluster, 12, SioOptions::default()).await;
    let group = json!("5");
    let calls = (0..64).map(|_| c.call("online", &group));
    let replies = futures_util::future::join_all(calls).await;
    let answered = replies
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|v| v["success"] == true))
        .count();
    assert_eq!(
        answered, 64,
        "every one of 64 back-to-back requests is answered"
    );
    assert!(c.is_open());

    // No payload at all, and an id that is not a number: the server's words, not a library's.
    let reply = c.call_without_payload("online").await.expect("answered");
    assert_eq!(reply["errorCode"], 1003, "{reply}");
    assert_eq!(reply["msg"], "the event carries no payload", "{reply}");
    let fresh = SioClient::connect(&sio(&cluster), None)
        .await
        .expect("connect");
    let reply = fresh
        .call("auth", &json!({"id": "abc", "name": "x", "token2": "t"}))
        .await
        .expect("answered");
    let text = reply["msg"].as_str().unwrap_or_default().to_string();
    for internal in ["Flex", "untagged", "struct", "line 1 column"] {
        assert!(!text.contains(internal), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_second_auth_and_repeated_groups_change_nothing() {
    let cluster = start(&[("GRU_SPEAR__MAX_GROUPS_PER_CONNECTION", "3")]).await;
    let mut c = client(&cluster, 13, SioOptions::default()).await;
    let reply = c
        .call(
            "auth",
            &json!({"id": 13, "name": "x", "token2": "v1.forged.AAAA"}),
        )
        .await
        .expect("answered");
    assert_eq!(reply["errorCode"], 1003, "{reply}");
    assert!(
        !c.closed_within(Duration::from_secs(1)).await,
        "an authenticated connection stays after a bad second auth"
    );

    let reply = c
        .call("join", &json!({"groups": [1, 1, 1, 1, 1, 2, 2, 3]}))
        .await
        .expect("join ack");
    assert_eq!(reply["success"], true, "repeats count once: {reply}");
    assert_eq!(reply["data"]["groups"], json!([1, 2, 3]), "{reply}");
    let reply = c
        .call("join", &json!({"groups": [3, 3]}))
        .await
        .expect("join ack");
    assert_eq!(reply["success"], true, "already a member: {reply}");
    let reply = c
        .call("join", &json!({"groups": [4]}))
        .await
        .expect("join ack");
    assert_eq!(
        reply["errorCode"], 1002,
        "a fourth group is over the limit: {reply}"
    );
    let reply = c
        .call(
            "msg",
            &json!({"type": 1, "target": {"id": 4}, "content": "x"}),
        )
        .await
        .expect("msg ack");
    assert_eq!(reply["success"], true, "{reply}");
    assert!(
        c.next_event("msg", Duration::from_millis(500))
            .await
            .is_none(),
        "a refused join leaves no room behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_connections() {
    let cluster = start(&[("GRU_SPEAR__MAX_CONNECTIONS_PER_IP", "3")]).await;
    let addr = sio(&cluster);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            SioClient::connect(&addr, None)
                .await
                .expect("within the limit"),
        );
    }
    let over = SioClient::connect(&addr, None).await;
    assert!(
        over.is_err(),
        "a fourth connection from 127.0.0.1 is refused"
    );
    let other = SioOptions {
        local_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        ..SioOptions::default()
    };
    SioClient::connect_with(&addr, other)
        .await
        .expect("another address has its own limit");
    held.pop();
    cluster
        .wait_for("a slot to come free", Duration::from_secs(5), || async {
            SioClient::connect(&addr, None).await.ok()
        })
        .await;
}
