//! `cluster_view_with_a_paused_core`: a core node frozen (SIGSTOP, as a paused VM: its ports
//! still take connections, nothing answers) does not stop the others from reading the cluster
//! view, linearizable or not. A view used to wait for every peer's status up to the caller's
//! RPC timeout, so every view read through another node's `ClusterClient` (a follower asking
//! the leader; a spear's registry read) failed while one peer hung.

use std::time::Duration;

use gru_testkit::{TestCluster, CORES};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_view_with_a_paused_core() {
    let (cluster, leader, _) = TestCluster::three_cores(crate::gru()).await;
    let mut followers = CORES.iter().copied().filter(|id| *id != leader);
    let (asker, paused) = (
        followers.next().expect("a follower"),
        followers.next().expect("another follower"),
    );
    let frozen = cluster.freeze(paused);
    for path in [
        "/api/v1/cluster?consistency=linearizable",
        "/api/v1/cluster",
    ] {
        // Asked of the follower: the linearizable read goes through its client to the
        // leader, whose view probes every peer.
        let resp = cluster
            .get(asker, path)
            .await
            .unwrap_or_else(|| panic!("{path}: no answer"));
        let status = resp.status().as_u16();
        let view: Value = resp.json().await.expect("JSON");
        assert_eq!(status, 200, "{path}: {view}");
        assert_eq!(view["leader_id"], leader, "{path}: {view}");
        let paused_view = view["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["id"] == paused)
            .cloned()
            .expect("the paused node is listed");
        assert!(
            paused_view["unreachable"].is_string(),
            "{path}: the paused node is shown unreachable: {paused_view}"
        );
    }
    drop(frozen);
    // Thawed, it answers again.
    gru_testkit::wait_for(
        "the thawed node to show in the view again",
        Duration::from_secs(30),
        || async {
            let resp = cluster.get(asker, "/api/v1/cluster").await?;
            let view: Value = resp.json().await.ok()?;
            let back = view["nodes"]
                .as_array()?
                .iter()
                .any(|n| n["id"] == paused && n["unreachable"].is_null());
            back.then_some(())
        },
    )
    .await;
}
