//! One `gru` node with every client-facing role and the limits a scenario tightens.

use serde_json::{json, Value};

use gru_testkit::sio::{SioClient, SioOptions};
use gru_testkit::tokens::spear_token;
use gru_testkit::TestCluster;

/// The node's id.
pub const NODE: u64 = 1;

/// A started single-node cluster (core, spear, ticket, stat; local relay) with `env`
/// overrides, its leader elected and its spear registered.
pub async fn start(env: &[(&str, &str)]) -> TestCluster {
    env.iter()
        .fold(TestCluster::builder(), |b, (k, v)| b.env(k, v))
        .node(NODE, &["core", "spear", "ticket", "stat"])
        .launch()
        .await
}

/// The node's socket.io address.
pub fn sio(cluster: &TestCluster) -> String {
    format!("127.0.0.1:{}", cluster.ports(NODE).sio)
}

/// A spear token for `uid` valid for `secs` seconds.
pub fn token(uid: u64, secs: u64) -> String {
    spear_token(uid, vec![NODE], gru::clock::unix_ms() / 1000 + secs)
}

/// A client of `uid` authenticated by the handshake token, behaving as `options` say.
pub async fn client(cluster: &TestCluster, uid: u64, options: SioOptions) -> SioClient {
    let options = SioOptions {
        auth: Some(json!({"token": token(uid, 600)})),
        ..options
    };
    SioClient::connect_with(&sio(cluster), options)
        .await
        .unwrap_or_else(|e| panic!("user {uid}: {e}"))
}

/// A client of `uid` with a 4 KiB receive buffer: once it stops reading, the server's writes
/// to it stall after little data.
pub async fn small_window_client(cluster: &TestCluster, uid: u64) -> SioClient {
    let options = SioOptions {
        recv_buffer: Some(4096),
        ..SioOptions::default()
    };
    client(cluster, uid, options).await
}

/// The online members of `gid` as a fresh client sees them.
pub async fn online(cluster: &TestCluster, gid: u64) -> Vec<u64> {
    let body: Value = cluster
        .get(NODE, &format!("/getGroupStat?groupId={gid}"))
        .await
        .expect("stat answers")
        .json()
        .await
        .expect("json");
    body["userIds"]
        .as_array()
        .expect("userIds")
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// The node's resident memory, MiB.
pub fn rss_mib(cluster: &TestCluster) -> f64 {
    cluster.rss_kib(NODE).expect("node running") as f64 / 1024.0
}
