//! `handshake_resume_own_channel`: a client that resumes in the socket.io handshake
//! (`auth: {token, resume}`) gets what it missed on its own channel, once and in order, then
//! an `auth_result` naming where the channel went live, then live messages. Before the fix
//! the replay ran before the connect packet was out: it was lost, and the connection never
//! joined its own channel (no live unicast either, and no `resync`).

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

const WAIT: Duration = Duration::from_secs(10);
const ALICE: u64 = 3201;
const BOB: u64 = 3202;

/// Sends a unicast from `c` to `to` and returns the ack's position.
async fn send(c: &SioClient, to: u64, content: &str) -> u64 {
    let msg = json!({"type": 0, "target": {"id": to}, "content": content});
    let ack = c
        .call("msg", &Value::String(msg.to_string()))
        .await
        .expect("msg ack");
    assert_eq!(ack["success"], true, "{ack}");
    ack["data"]["position"].as_u64().expect("a position")
}

/// The next `msg` or `auth_result` of `c` within `within`: `("msg", content, position)` or
/// `("auth_result", "", position of u:ALICE)`.
async fn next_within(c: &mut SioClient, within: Duration) -> Option<(String, String, u64)> {
    let (name, data) = c.next_of(&["msg", "auth_result"], within).await?;
    if name == "msg" {
        let content = data["content"].as_str().unwrap_or_default().to_string();
        return Some((name, content, data["position"].as_u64()?));
    }
    let at = &data["data"]["positions"][format!("u:{ALICE}")];
    Some((name, String::new(), at["position"].as_u64()?))
}

async fn next(c: &mut SioClient) -> Option<(String, String, u64)> {
    next_within(c, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_resume_own_channel() {
    let cluster = TestCluster::single_spear(gru_testkit::gru(), ClusterOptions::default()).await;
    let addr = cluster.sio_addr(1);
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = |uid| spear_token(uid, vec![1], exp);
    let bob = SioClient::connect(&addr, Some(json!({"token": token(BOB)})))
        .await
        .expect("bob connects");

    // Alice, authenticated in the handshake, learns where her channel starts.
    let mut alice = SioClient::connect(&addr, Some(json!({"token": token(ALICE)})))
        .await
        .expect("alice connects");
    let first = alice
        .next_event("auth_result", WAIT)
        .await
        .expect("an auth_result after the handshake");
    assert_eq!(first["success"], true, "{first}");
    let start = &first["data"]["positions"][format!("u:{ALICE}")];
    let epoch = start["epoch"].as_str().expect("an epoch").to_string();
    assert_eq!(start["position"], 0, "{first}");

    for i in 1..=3 {
        assert_eq!(send(&bob, ALICE, &format!("m{i}")).await, i);
        assert_eq!(
            next(&mut alice).await,
            Some(("msg".into(), format!("m{i}"), i))
        );
    }
    drop(alice);
    assert_eq!(send(&bob, ALICE, "m4").await, 4);
    assert_eq!(send(&bob, ALICE, "m5").await, 5);

    // Back, presenting position 3 in the handshake.
    let resume = json!({format!("u:{ALICE}"): {"epoch": epoch, "position": 3}});
    let mut alice = SioClient::connect(
        &addr,
        Some(json!({"token": token(ALICE), "resume": resume})),
    )
    .await
    .expect("alice resumes");
    assert_eq!(next(&mut alice).await, Some(("msg".into(), "m4".into(), 4)));
    assert_eq!(next(&mut alice).await, Some(("msg".into(), "m5".into(), 5)));
    assert_eq!(
        next(&mut alice).await,
        Some(("auth_result".into(), String::new(), 5)),
        "the answer names where the channel went live"
    );
    // Live again.
    assert_eq!(send(&bob, ALICE, "m6").await, 6);
    assert_eq!(next(&mut alice).await, Some(("msg".into(), "m6".into(), 6)));
    // Nothing twice.
    let extra = next_within(&mut alice, Duration::from_millis(500)).await;
    assert_eq!(extra, None, "a message came twice");
}
