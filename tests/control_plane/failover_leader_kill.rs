//! `leader_kill`: kill -9 the leader five times; the survivors elect a new one, and the
//! restarted node rejoins as a follower and reaches the same applied index.

use std::time::Duration;

use gru_testkit::{TestCluster, CORES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill() {
    let (mut cluster, mut leader, mut term) = TestCluster::three_cores(crate::gru()).await;
    let client = cluster.client();

    for round in 1..=5 {
        client
            .put_meta(&format!("round-{round}"), "before kill")
            .await
            .expect("write before the kill");
        cluster.kill(leader);
        let survivors: Vec<u64> = CORES.iter().copied().filter(|id| *id != leader).collect();
        let (new_leader, new_term) = cluster
            .wait_leader(&survivors, Duration::from_secs(20))
            .await;
        assert_ne!(new_leader, leader, "round {round}: a survivor leads");
        assert!(new_term > term, "round {round}: the term advanced");

        cluster.restart(leader);
        let applied = cluster
            .wait_converged(&CORES, Duration::from_secs(20))
            .await;
        let view = cluster.view(new_leader).await.expect("leader answers");
        let back = view
            .node(leader)
            .and_then(|n| n.status.clone())
            .expect("restarted node reports");
        assert_eq!(
            back.server_state, "Follower",
            "round {round}: node {leader} rejoined as follower"
        );
        // `wait_converged` saw every node at `applied`; the cluster may have applied more
        // since (a new leader raises the id ceiling), never less.
        assert!(
            back.applied_index >= applied,
            "round {round}: node {leader} caught up: {} < {applied}",
            back.applied_index
        );
        let meta = client
            .get_meta_local(&cluster.grpc_addr(leader))
            .await
            .expect("restarted node answers");
        assert!(
            meta.iter().any(|(k, _)| k == &format!("round-{round}")),
            "round {round}: the write committed before the kill is on the restarted node"
        );
        (leader, term) = (new_leader, view.term);
    }
}
