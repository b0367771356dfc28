//! `add_core`: a fourth core node joins at runtime (learner, catch up, voter); the group then
//! survives the loss of any one node; `gru cluster remove` takes it out again.

use std::time::Duration;

use gru_testkit::{NodeSpec, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_core() {
    let (mut cluster, _, _) = TestCluster::three_cores(crate::gru()).await;
    let client = cluster.client();
    for i in 0..50 {
        client
            .put_meta(&format!("before-join-{i}"), "x")
            .await
            .expect("write");
    }

    cluster.add_node(NodeSpec::joining_core(4));
    cluster.start(4);
    let all = [1, 2, 3, 4];
    cluster
        .wait_for(
            "node 4 to be a voter everywhere",
            Duration::from_secs(30),
            || async {
                let views = cluster.views(&all).await;
                (views.len() == 4 && views.values().all(|v| v.voters == vec![1, 2, 3, 4]))
                    .then_some(())
            },
        )
        .await;
    assert!(cluster.log(4).contains("joined the group as a voter"));
    let meta = client
        .get_meta_local(&cluster.grpc_addr(4))
        .await
        .expect("node 4 answers");
    assert_eq!(
        meta.iter()
            .filter(|(k, _)| k.starts_with("before-join-"))
            .count(),
        50
    );

    for victim in all {
        cluster.kill(victim);
        let rest: Vec<u64> = all.iter().copied().filter(|id| *id != victim).collect();
        cluster.wait_leader(&rest, Duration::from_secs(20)).await;
        client
            .put_meta(&format!("without-{victim}"), "ok")
            .await
            .unwrap_or_else(|e| panic!("the group takes writes without node {victim}: {e}"));
        cluster.restart(victim);
        cluster.wait_converged(&all, Duration::from_secs(20)).await;
    }

    let status = cluster
        .gru()
        .command()
        .args(["cluster", "--config"])
        .arg(cluster.config_path())
        .args(["remove", "--node", "4"])
        .status()
        .expect("run gru cluster remove");
    assert!(status.success(), "gru cluster remove --node 4 succeeds");
    cluster
        .wait_for(
            "voters to be 1, 2, 3 again",
            Duration::from_secs(20),
            || async {
                let views = cluster.views(&[1, 2, 3]).await;
                (views.len() == 3
                    && views
                        .values()
                        .all(|v| v.voters == vec![1, 2, 3] && v.node(4).is_none()))
                .then_some(())
            },
        )
        .await;
}
