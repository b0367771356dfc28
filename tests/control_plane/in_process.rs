//! `in_process_nodes`: one test process runs two single-node clusters through `start_node`,
//! the same start function the binary uses, on free ports; each elects itself and issues
//! strict ids; they shut down one after the other, and each one's ports are free as soon as
//! its shutdown returns while the other keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use gru::config::{ClusterConfig, ListenAddrs};
use gru::node::start_node;

use gru_testkit::ports::{assert_released, free_port};
use gru_testkit::wait_for;

fn listen() -> ListenAddrs {
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    ListenAddrs::dev(
        local(free_port()),
        local(free_port()),
        local(free_port()),
        local(free_port()),
    )
}

/// Strict ids from the node at `http`, once it leads its one-node group.
async fn ids(http: SocketAddr) -> Vec<u64> {
    let url = format!("http://{http}/api/v1/ids?count=3");
    wait_for("strict ids", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let body: serde_json::Value = reqwest::Client::new()
                .get(&url)
                .bearer_auth(gru::config::DEV_ADMIN_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ids: Vec<u64> = body["ids"]
                .as_array()?
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect();
            (ids.len() == 3).then_some(ids)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_nodes() {
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let listens = [listen(), listen()];
    let mut nodes = Vec::new();
    for (dir, listen) in dirs.iter().zip(&listens) {
        let config = ClusterConfig::dev(dir.path().join("data"), listen.clone());
        config.validate().expect("dev config is valid");
        nodes.push(start_node(config, 1).await.expect("node starts"));
    }
    for (node, listen) in nodes.iter().zip(&listens) {
        assert_eq!(node.http_addr(), listen.http);
        let ids = ids(node.http_addr()).await;
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids not increasing: {ids:?}"
        );
    }

    // Stop the first: its ports are free at once, the second still serves.
    let mut nodes = nodes.into_iter();
    let first = nodes.next().expect("first node");
    let second = nodes.next().expect("second node");
    first.shutdown().await;
    assert_free(&listens[0]);
    let more = ids(second.http_addr()).await;
    assert_eq!(more.len(), 3);
    second.shutdown().await;
    assert_free(&listens[1]);
}

/// Every port of `listen` can be bound again.
fn assert_free(listen: &ListenAddrs) {
    let tcp: Vec<SocketAddr> = [listen.grpc, listen.http]
        .into_iter()
        .chain(listen.sio)
        .collect();
    assert_released(&tcp, &[listen.gossip], "after shutdown");
}
