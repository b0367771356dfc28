//! A client's way in, as a real one takes it: `GET /ticket` with a token1, then the spear it
//! names and Gru's `auth` event.

use std::time::Duration;

use serde_json::{json, Value};

use crate::sio::SioClient;
use crate::tokens::token1;
use crate::TestCluster;

/// `GET /ticket` on `node` for a user (a token1 of [`token1`]); returns `(spear host:port,
/// token2)`. Asks again until a ticket comes (20 s at most).
pub async fn ticket(cluster: &TestCluster, node: u64, uid: u64, name: &str) -> (String, String) {
    ticket_with(cluster, node, uid, name, &token1(uid, name)).await
}

/// `GET /ticket` with a given token1.
pub async fn ticket_with(
    cluster: &TestCluster,
    node: u64,
    uid: u64,
    name: &str,
    token1: &str,
) -> (String, String) {
    let url = format!(
        "http://{}/ticket?userId={uid}&userName={name}&appType=web&token1={token1}",
        cluster.http_addr(node),
    );
    let body: Value = cluster
        .wait_for("a ticket", Duration::from_secs(20), || async {
            let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (v["success"] == true).then_some(v)
        })
        .await;
    let addr = body["data"]["addr"]
        .as_str()
        .expect("addr")
        .trim_start_matches("http://")
        .to_string();
    (
        addr,
        body["data"]["token"].as_str().expect("token").to_string(),
    )
}

/// A client that went through ticket on `ticket_node` and Gru's `auth` event.
pub async fn authed(cluster: &TestCluster, ticket_node: u64, uid: u64, name: &str) -> SioClient {
    let (addr, token2) = ticket(cluster, ticket_node, uid, name).await;
    let client = SioClient::connect(&addr, None).await.expect("connect");
    let reply = client
        .call(
            "auth",
            &json!({"id": uid, "name": name, "appType": "web", "token2": token2})
                .to_string()
                .into(),
        )
        .await
        .expect("auth ack");
    assert_eq!(reply["success"], true, "auth: {reply}");
    client
}
