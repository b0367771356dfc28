//! `secret_rotation`: the business and spear secrets are replaced without a restart. With the
//! new secrets in force and the old ones as `previous_…`, tokens signed with either are
//! accepted and new spear tokens are signed with the new secret; once the old secrets are
//! removed, tokens signed with them are refused. The node reloads `[auth]` on SIGHUP, and its
//! clients stay connected throughout.

use std::time::Duration;

use gru::services::auth::{Claims, TokenKey, TokenKind};
use serde_json::{json, Value};

use gru_testkit::sio::{SioClient, SioError};
use gru_testkit::{ClusterOptions, TestCluster};

const OLD_BUSINESS: &str = "old-business-secret-00000001";
const OLD_SPEAR: &str = "old-spear-secret-000000000001";
const NEW_BUSINESS: &str = "new-business-secret-00000002";
const NEW_SPEAR: &str = "new-spear-secret-000000000002";
const UID: u64 = 77;

fn token1(secret: &str) -> String {
    TokenKey::new(TokenKind::Business, secret.as_bytes()).sign(Claims {
        typ: TokenKind::Business,
        uid: UID,
        name: "rot".into(),
        app: "web".into(),
        exp: gru::clock::unix_ms() / 1000 + 600,
        groups: None,
        spears: None,
    })
}

/// `GET /ticket` with `token1`: the spear token, or Gru's error code.
async fn ticket(cluster: &TestCluster, token1: &str) -> Result<String, i64> {
    let path = format!("/ticket?userId={UID}&userName=rot&appType=web&token1={token1}");
    let body: Value = cluster
        .get(1, &path)
        .await
        .expect("ticket answers")
        .json()
        .await
        .expect("json");
    match body["data"]["token"].as_str() {
        Some(token) if body["success"] == true => Ok(token.to_string()),
        _ => Err(body["errorCode"].as_i64().unwrap_or(-1)),
    }
}

fn verifies_with(secret: &str, token2: &str) -> bool {
    TokenKey::new(TokenKind::Spear, secret.as_bytes())
        .verify(token2, gru::clock::unix_ms() / 1000)
        .is_ok()
}

async fn connect(cluster: &TestCluster, token2: &str) -> Result<SioClient, SioError> {
    let addr = format!("127.0.0.1:{}", cluster.ports(1).sio);
    SioClient::connect(&addr, Some(json!({"token": token2}))).await
}

fn auth(business: &str, spear: &str, previous: Option<(&str, &str)>) -> String {
    let mut body = format!("business_secret = \"{business}\"\nspear_secret = \"{spear}\"\n");
    if let Some((b, s)) = previous {
        body.push_str(&format!(
            "previous_business_secret = \"{b}\"\nprevious_spear_secret = \"{s}\"\n"
        ));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation() {
    let options = ClusterOptions {
        auth_toml: Some(auth(OLD_BUSINESS, OLD_SPEAR, None)),
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::single_spear(gru_testkit::gru(), options).await;
    let old_t1 = token1(OLD_BUSINESS);
    let old_t2 = cluster
        .wait_for(
            "a ticket under the old secrets",
            Duration::from_secs(20),
            || async { ticket(&cluster, &old_t1).await.ok() },
        )
        .await;
    assert!(verifies_with(OLD_SPEAR, &old_t2));
    let live = connect(&cluster, &old_t2)
        .await
        .expect("connected before the rotation");

    // Rotate: new secrets in force, the old ones still accepted.
    cluster.set_auth_toml(&auth(
        NEW_BUSINESS,
        NEW_SPEAR,
        Some((OLD_BUSINESS, OLD_SPEAR)),
    ));
    cluster.signal(1, "HUP");
    let new_t1 = token1(NEW_BUSINESS);
    let new_t2 = cluster
        .wait_for(
            "the new business secret in force",
            Duration::from_secs(10),
            || async { ticket(&cluster, &new_t1).await.ok() },
        )
        .await;
    assert!(
        verifies_with(NEW_SPEAR, &new_t2),
        "new spear tokens use the new secret"
    );
    assert!(!verifies_with(OLD_SPEAR, &new_t2));
    let from_old_t1 = ticket(&cluster, &old_t1)
        .await
        .expect("a token1 signed with the previous secret is still accepted");
    assert!(verifies_with(NEW_SPEAR, &from_old_t1));
    connect(&cluster, &old_t2)
        .await
        .expect("a spear token signed with the previous secret is still accepted");
    connect(&cluster, &new_t2).await.expect("and a new one");

    // Retire the old secrets.
    cluster.set_auth_toml(&auth(NEW_BUSINESS, NEW_SPEAR, None));
    cluster.signal(1, "HUP");
    cluster
        .wait_for(
            "the old business secret retired",
            Duration::from_secs(10),
            || async { (ticket(&cluster, &old_t1).await == Err(711)).then_some(()) },
        )
        .await;
    let refused = connect(&cluster, &old_t2)
        .await
        .err()
        .expect("a spear token signed with the retired secret is refused");
    assert!(
        refused.refusal().is_some_and(|m| m.starts_with("1003")),
        "{refused}"
    );
    connect(&cluster, &new_t2)
        .await
        .expect("new tokens still work");
    assert!(ticket(&cluster, &new_t1).await.is_ok());

    // Nothing restarted: the first client is still connected.
    assert!(
        live.is_open(),
        "a connection made before the rotation stays"
    );
    let reply = live
        .call(
            "msg",
            &json!({"type": 0, "target": {"id": UID}, "content": "still here"}),
        )
        .await
        .expect("msg ack");
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(cluster.log(1).matches("auth section reloaded").count(), 2);
}
