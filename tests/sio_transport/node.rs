//! One `gru` node per WebSocket path, and the comparison of what each path showed.

use std::fmt::Debug;

use gru_testkit::tokens::spear_token;
use gru_testkit::TestCluster;

/// The node's id.
pub const NODE: u64 = 1;

/// Both WebSocket paths: gru's own, then the reference.
pub const PATHS: [&str; 2] = ["gru", "socketioxide"];

/// A single-node cluster serving direct WebSocket sessions on `path`, with `env` overrides.
pub async fn start(path: &str, env: &[(&str, &str)]) -> TestCluster {
    env.iter()
        .fold(
            TestCluster::builder().env("GRU_SPEAR__WEBSOCKET", path),
            |b, (k, v)| b.env(k, v),
        )
        .node(NODE, &["core", "spear", "ticket", "stat"])
        .launch()
        .await
}

/// The node's socket.io address.
pub fn sio(cluster: &TestCluster) -> String {
    format!("127.0.0.1:{}", cluster.ports(NODE).sio)
}

/// A spear token for `uid`, valid for ten minutes.
pub fn token(uid: u64) -> String {
    spear_token(uid, vec![NODE], gru::clock::unix_ms() / 1000 + 600)
}

/// Asserts that every path saw the same, naming each path's observation when not; returns it.
pub fn same<T: PartialEq + Debug + Clone>(seen: &[(&str, T)]) -> T {
    let (first_path, first) = &seen[0];
    for (path, observed) in &seen[1..] {
        assert_eq!(
            observed, first,
            "{path} differs from {first_path}: {seen:?}"
        );
    }
    first.clone()
}
