//! `server_api_publish`: a business server publishes to a user, a group, a list of users and in
//! a batch, through either spear's HTTP port, and every recipient on either spear gets each
//! message once, as a `msg` whose `sender` says the server sent it, with the id and position
//! the answer gave; a retry with the same `Idempotency-Key` — sent to the other spear — gets
//! the first answer and delivers nothing again; the key reused for another body is refused.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::{ClusterOptions, API_KEY, API_KEY_NAME};

use crate::common::{client_on, contents, msgs, post, two_spears};

const QUIET: Duration = Duration::from_millis(1500);
const A: u64 = 101;
const B: u64 = 102;
const GROUP: u64 = 50;

/// The accepted messages of an answer, by channel.
fn accepted(answer: &Value) -> Vec<(String, u64)> {
    answer["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["channel"].as_str().unwrap_or_default().to_string(),
                        m["id"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_publish() {
    let cluster = two_spears(ClusterOptions::default()).await;
    // A on spear 2, B on spear 3, both in the group; A has a second connection on spear 3.
    let (_a, mut a_events) = client_on(&cluster, 2, A, &[GROUP]).await;
    let (_a2, mut a2_events) = client_on(&cluster, 3, A, &[]).await;
    let (_b, mut b_events) = client_on(&cluster, 3, B, &[GROUP]).await;

    // To a user on the other spear.
    let (status, _, answer) = post(
        &cluster,
        2,
        "/api/v1/publish",
        &[],
        &json!({"to": {"user": B}, "content": "to-b"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let to_b = accepted(&answer);
    assert_eq!(to_b.len(), 1, "{answer}");
    assert_eq!(to_b[0].0, format!("u:{B}"));
    assert_eq!(answer["messages"][0]["position"], 1, "{answer}");
    let got = msgs(&mut b_events, QUIET).await;
    assert_eq!(contents(&got), ["to-b"], "{got:?}");
    let m = &got[0];
    assert_eq!(m["id"].as_u64(), Some(to_b[0].1), "the answer's id: {m}");
    assert_eq!(m["fromId"], 0, "{m}");
    assert_eq!(m["msgType"], 0, "{m}");
    assert_eq!(m["target"]["id"], B.to_string(), "{m}");
    assert_eq!(
        m["sender"],
        json!({"type": "server", "name": API_KEY_NAME}),
        "{m}"
    );
    assert_eq!(m["channel"], format!("u:{B}"), "{m}");
    assert_eq!(m["epoch"], answer["messages"][0]["epoch"], "{m}");
    assert_eq!(m["position"], 1, "{m}");

    // To a group with members on both spears, through the other spear, under another name.
    let (status, _, answer) = post(
        &cluster,
        3,
        "/api/v1/publish",
        &[],
        &json!({"to": {"group": GROUP.to_string()}, "content": "to-group", "sender": "billing"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let a_got = msgs(&mut a_events, QUIET).await;
    let b_got = msgs(&mut b_events, QUIET).await;
    assert_eq!(contents(&a_got), ["to-group"], "{a_got:?}");
    assert_eq!(contents(&b_got), ["to-group"], "{b_got:?}");
    assert_eq!(a_got[0]["sender"]["name"], "billing");
    assert_eq!(a_got[0]["msgType"], 1);
    assert!(
        msgs(&mut a2_events, Duration::from_millis(300))
            .await
            .is_empty(),
        "A's second connection is not in the group"
    );

    // To a list: a message each (the repeated user once); both of A's connections get A's.
    let (status, _, answer) = post(
        &cluster,
        2,
        "/api/v1/publish",
        &[],
        &json!({"to": {"users": [A, B, A]}, "content": "to-list"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let list = accepted(&answer);
    assert_eq!(
        list.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        [format!("u:{A}"), format!("u:{B}")],
        "{answer}"
    );
    assert!(list[0].1 < list[1].1, "ids increase in list order");
    for events in [&mut a_events, &mut a2_events, &mut b_events] {
        let got = msgs(events, QUIET).await;
        assert_eq!(contents(&got), ["to-list"], "{got:?}");
    }

    // A batch, in order: per channel, the positions follow.
    let batch = json!({"messages": [
        {"to": {"user": A}, "content": "batch-1"},
        {"to": {"group": GROUP}, "content": "batch-2"},
        {"to": {"user": A}, "content": "batch-3"},
    ]});
    let (status, _, answer) = post(&cluster, 3, "/api/v1/publish/batch", &[], &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["failed"].as_u64()),
        (Some(3), Some(0))
    );
    let ids: Vec<u64> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["messages"][0]["id"].as_u64().expect("an id each"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let a_got = msgs(&mut a_events, QUIET).await;
    assert_eq!(
        contents(&a_got),
        ["batch-1", "batch-2", "batch-3"],
        "{a_got:?}"
    );
    let positions: Vec<u64> = a_got
        .iter()
        .filter(|m| m["channel"] == format!("u:{A}"))
        .map(|m| m["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, [2, 3], "A's channel: to-list was 1");
    assert_eq!(
        contents(&msgs(&mut a2_events, QUIET).await),
        ["batch-1", "batch-3"]
    );
    assert_eq!(contents(&msgs(&mut b_events, QUIET).await), ["batch-2"]);

    // An idempotent retry, sent to the other spear: the first answer, nothing delivered again.
    let once = json!({"to": {"group": GROUP}, "content": "exactly-once"});
    let key = [("Idempotency-Key", "order-4711")];
    let (status, first_headers, first) = post(&cluster, 2, "/api/v1/publish", &key, &once).await;
    assert_eq!(status, 200, "{first}");
    assert!(first_headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = post(&cluster, 3, "/api/v1/publish", &key, &once).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "the retry gets the first answer");
    assert_eq!(
        headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let other = json!({"to": {"group": GROUP}, "content": "something else"});
    let (status, _, refused) = post(&cluster, 2, "/api/v1/publish", &key, &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    for events in [&mut a_events, &mut b_events] {
        let got = msgs(events, Duration::from_secs(3)).await;
        assert_eq!(contents(&got), ["exactly-once"], "delivered once: {got:?}");
    }

    // A caller that hangs up right after sending: the publish is not cut halfway, and a retry
    // gets its answer (never a key stuck "in progress"); B gets it once.
    let body = json!({"to": {"user": B}, "content": "hung-up"}).to_string();
    let raw = format!(
        "POST /api/v1/publish HTTP/1.1\r\nHost: gru\r\nAuthorization: Bearer {API_KEY}\r\n\
         Idempotency-Key: hang-up-1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(cluster.http_addr(2))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, raw.as_bytes())
        .await
        .expect("send");
    drop(tcp);
    let hang_up = [("Idempotency-Key", "hang-up-1")];
    let (status, answer) = cluster
        .wait_for(
            "the hung-up publish answered",
            Duration::from_secs(10),
            || async {
                let sent = json!({"to": {"user": B}, "content": "hung-up"});
                let (status, _, answer) =
                    post(&cluster, 3, "/api/v1/publish", &hang_up, &sent).await;
                (status != 409).then_some((status, answer))
            },
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let got = msgs(&mut b_events, Duration::from_secs(2)).await;
    assert_eq!(contents(&got), ["hung-up"], "once: {got:?}");

    // Bad requests name what is wrong; nothing is delivered.
    for (body, says) in [
        (json!({"to": {"user": -3}, "content": "x"}), "an id"),
        (
            json!({"to": {"users": []}, "content": "x"}),
            "at least one user",
        ),
        (
            json!({"to": {"room": 1}, "content": "x"}),
            "unknown variant",
        ),
        (
            json!({"to": {"user": 1}, "content": "x", "sender": ""}),
            "sender",
        ),
        (
            json!({"to": {"user": 1}, "content": "x".repeat(70_000)}),
            "larger than",
        ),
    ] {
        let (status, _, answer) = post(&cluster, 2, "/api/v1/publish", &[], &body).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {message}");
    }
    let too_many = json!({"messages": (0..1001).map(|i| json!({"to": {"user": i}, "content": "x"})).collect::<Vec<_>>()});
    let (status, _, answer) = post(&cluster, 2, "/api/v1/publish/batch", &[], &too_many).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("server_api.max_batch")));
    assert!(msgs(&mut a_events, Duration::from_millis(500))
        .await
        .is_empty());
}
