//! `logs_json_carry_the_node_id`: with `--log-format json` (here through `GRU_LOG_FORMAT`) every
//! line a node writes, from its start to its graceful stop — its own, its spawned tasks' and
//! openraft's — is one JSON object naming the node.

use serde_json::Value;

use gru_testkit::{ClusterOptions, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_json_carry_the_node_id() {
    let options = ClusterOptions {
        env: vec![("GRU_LOG_FORMAT".into(), "json".into())],
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "spear"])
        .cores(&[2, 3])
        .options(options)
        .launch()
        .await;
    for id in [1, 2, 3] {
        assert!(cluster.stop(id), "node {id} stopped cleanly");
    }
    let mut openraft_lines = 0;
    for id in [1u64, 2, 3] {
        let log = cluster.log(id);
        let mut lines = 0;
        for line in log.lines().filter(|l| !l.starts_with("=== harness")) {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("node {id}: not JSON ({e}): {line:?}"));
            assert_eq!(v["node"], id, "node {id}: {line}");
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            if v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("openraft"))
            {
                openraft_lines += 1;
            }
            lines += 1;
        }
        // From "node started" to "shutdown complete", at least.
        assert!(
            log.contains("node started") && log.contains("shutdown complete"),
            "node {id}"
        );
        assert!(lines >= 2, "node {id} wrote {lines} lines");
    }
    // The harness runs nodes with `openraft=info`: Raft's own lines are among them.
    assert!(openraft_lines > 0, "no line came from openraft");
}
