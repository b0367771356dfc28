//! `server_api_auth`: the server API takes API keys, never client tokens. A request without a
//! key, with another scheme, with a wrong key or with a client's spear token is refused with
//! 401 (and `WWW-Authenticate: Bearer`); a key without the route's scope gets 403. A key is
//! rotated without a restart: the new one added beside it (SIGHUP), then the old one removed
//! (SIGHUP) — the new one works throughout, the old one until its removal, and a client
//! connected all along gets what each publishes.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::{ClusterOptions, TestCluster, BUSINESS_SECRET, SPEAR_SECRET};

use crate::common::{client_on, contents, get_as, msgs, post_as};
use gru_testkit::tokens::spear_token;

const OLD_KEY: &str = "old-server-api-key-000000000000000001";
const NEW_KEY: &str = "new-server-api-key-000000000000000002";
const OPS_KEY: &str = "ops-server-api-key-000000000000000003";
const UID: u64 = 9;

fn auth(keys: &[(&str, &str, &str)]) -> String {
    let mut body =
        format!("business_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n");
    for (name, secret, scopes) in keys {
        body.push_str(&format!(
            "[[auth.api_keys]]\nname = \"{name}\"\nsecret = \"{secret}\"\nscopes = {scopes}\n"
        ));
    }
    body
}

/// Publishes `content` to the user with `key`: the status and answer.
async fn publish(cluster: &TestCluster, key: Option<&str>, content: &str) -> (u16, Value) {
    let body = json!({"to": {"user": UID}, "content": content}).to_string();
    let (status, headers, answer) = post_as(cluster, 1, "/api/v1/publish", key, &[], body).await;
    if status == 401 {
        assert_eq!(
            headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "a 401 names the scheme"
        );
    }
    (status, answer)
}

/// Waits until the node logged its `n`th reload of `[auth]` (the keys are in force before).
async fn reloaded(cluster: &TestCluster, n: usize) {
    cluster
        .wait_for("the config reloaded", Duration::from_secs(10), || async {
            (cluster.log(1).matches("auth section reloaded").count() >= n).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_auth() {
    let old_and_ops = [
        ("old", OLD_KEY, "[\"publish\"]"),
        ("ops", OPS_KEY, "[\"connections\"]"),
    ];
    let options = ClusterOptions {
        auth_toml: Some(auth(&old_and_ops)),
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::single_spear(gru_testkit::gru(), options).await;
    cluster
        .wait_for("the spear registered", Duration::from_secs(30), || async {
            let view = cluster.view(1).await?;
            (!view.spears.is_empty()).then_some(())
        })
        .await;
    let (_client, mut events) = client_on(&cluster, 1, UID, &[]).await;

    // Refusals: nothing is published.
    let client_token = spear_token(UID, vec![1], gru::clock::unix_ms() / 1000 + 600);
    for (key, code, says) in [
        (None, 401, "missing API key"),
        (Some("not-the-key"), 401, "unknown API key"),
        (Some(client_token.as_str()), 401, "unknown API key"),
        (Some(OPS_KEY), 403, "may not publish"),
    ] {
        let (status, answer) = publish(&cluster, key, "refused").await;
        assert_eq!(status, code, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says}: {message}");
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/api/v1/publish", cluster.http_addr(1)))
        .header("authorization", format!("Basic {OLD_KEY}"))
        .body(json!({"to": {"user": UID}, "content": "refused"}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 401, "another scheme");
    let (status, answer) = get_as(
        &cluster,
        1,
        &format!("/api/v1/users/{UID}/connections"),
        OLD_KEY,
    )
    .await;
    assert_eq!(
        status, 403,
        "the publish key may not list connections: {answer}"
    );
    let (status, answer) = get_as(
        &cluster,
        1,
        &format!("/api/v1/users/{UID}/connections"),
        OPS_KEY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["count"], 1, "{answer}");
    assert!(msgs(&mut events, Duration::from_millis(500))
        .await
        .is_empty());

    let (status, answer) = publish(&cluster, Some(OLD_KEY), "old-1").await;
    assert_eq!(status, 200, "{answer}");

    // Rotation, step 1: the new key beside the old one.
    cluster.set_auth_toml(&auth(&[
        old_and_ops[0],
        ("new", NEW_KEY, "[\"publish\"]"),
        old_and_ops[1],
    ]));
    cluster.signal(1, "HUP");
    reloaded(&cluster, 1).await;
    let (status, answer) = publish(&cluster, Some(NEW_KEY), "new-1").await;
    assert_eq!(status, 200, "the new key works at once: {answer}");
    let (status, answer) = publish(&cluster, Some(OLD_KEY), "old-2").await;
    assert_eq!(
        status, 200,
        "the old key still works during the rotation: {answer}"
    );

    // Step 2: the old key removed.
    cluster.set_auth_toml(&auth(&[("new", NEW_KEY, "[\"publish\"]"), old_and_ops[1]]));
    cluster.signal(1, "HUP");
    reloaded(&cluster, 2).await;
    let (status, answer) = publish(&cluster, Some(OLD_KEY), "refused").await;
    assert_eq!(status, 401, "the old key is retired: {answer}");
    let (status, answer) = publish(&cluster, Some(NEW_KEY), "new-2").await;
    assert_eq!(status, 200, "{answer}");

    let got = msgs(&mut events, Duration::from_secs(2)).await;
    assert_eq!(
        contents(&got),
        ["old-1", "new-1", "old-2", "new-2"],
        "{got:?}"
    );
    let names: Vec<&str> = got
        .iter()
        .map(|m| m["sender"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["old", "new", "old", "new"]);
    assert_eq!(cluster.log(1).matches("auth section reloaded").count(), 2);
}
