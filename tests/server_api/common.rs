//! What the server-API scenarios share: a cluster of one core and two spears on the Redis
//! relay, clients placed on a chosen spear, calls with the harness's key, and what a client
//! received.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use gru_testkit::sio::SioClient;
use gru_testkit::{ClusterOptions, TestCluster, API_KEY};

use gru_testkit::tokens::spear_token;

/// The spear-only nodes.
pub const SPEARS: [u64; 2] = [2, 3];

/// Node 1 (core, ticket, stat) and spears 2 and 3, relaying through the cluster's own Redis.
pub async fn two_spears(options: ClusterOptions) -> TestCluster {
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat"])
        .spears(&SPEARS)
        .options(options)
        .launch()
        .await;
    // A spear serves the server API once it knows the other spear's address.
    cluster.wait_announced(1, &SPEARS).await;
    cluster
}

/// A client of user `uid` on spear `spear`, in `groups`, with its events taken.
pub async fn client_on(
    cluster: &TestCluster,
    spear: u64,
    uid: u64,
    groups: &[u64],
) -> (SioClient, UnboundedReceiver<(String, Value)>) {
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = spear_token(uid, vec![spear], exp);
    let mut client = SioClient::connect(&cluster.sio_addr(spear), Some(json!({"token": token})))
        .await
        .expect("connect with a spear token");
    for gid in groups {
        client.join(*gid).await;
    }
    let events = client.take_events();
    (client, events)
}

/// POSTs `body` to `path` on `node` with the harness's key and `headers`: (status, headers,
/// JSON body).
pub async fn post(
    cluster: &TestCluster,
    node: u64,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_as(
        cluster,
        node,
        path,
        Some(API_KEY),
        headers,
        body.to_string(),
    )
    .await
}

/// POSTs `body` with `key` (none: no Authorization header).
pub async fn post_as(
    cluster: &TestCluster,
    node: u64,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, reqwest::header::HeaderMap, Value) {
    cluster.post_json(node, path, key, headers, body).await
}

/// GETs `path` on `node` with `key`: (status, JSON body).
pub async fn get_as(cluster: &TestCluster, node: u64, path: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}{path}", cluster.http_addr(node)))
        .bearer_auth(key)
        .send()
        .await
        .expect("the node answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

/// Every `msg` a client receives until none came for `quiet`.
pub async fn msgs(events: &mut UnboundedReceiver<(String, Value)>, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some((name, data))) = tokio::time::timeout(quiet, events.recv()).await {
        if name == "msg" {
            out.push(data);
        }
    }
    out
}

/// The contents of `msgs`, in order.
pub fn contents(msgs: &[Value]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m["content"].as_str().unwrap_or("<no content>"))
        .collect()
}
