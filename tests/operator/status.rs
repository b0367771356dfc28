//! `gru_status`: the table marks the leader and shows each member's lag and the spear's
//! connections, `--json` carries the same with each spear's own counts, and with no leader
//! (two of three cores gone) it exits non-zero.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tokens::spear_token;
use gru_testkit::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gru_status() {
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "ticket"])
        .cores(&[2, 3])
        .spears(&[4])
        .launch()
        .await;
    let (leader, _) = cluster.wait_ready().await;
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let mut clients = Vec::new();
    for uid in [7, 8] {
        let token = spear_token(uid, vec![4], exp);
        let c = SioClient::connect(&cluster.sio_addr(4), Some(json!({"token": token})))
            .await
            .expect("connect");
        c.join(70).await;
        clients.push(c);
    }

    let addr = cluster.http_addr(1).to_string();
    let (ok, out, err) =
        crate::run_gru(&["status", "--addr", &addr, "--key", gru_testkit::ADMIN_KEY]).await;
    assert!(ok, "gru status:\n{out}\n{err}");
    assert!(out.contains(&format!("leader {leader};")), "{out}");
    let row = |id: u64| {
        out.lines()
            .find(|l| l.get(2..).is_some_and(|r| r.starts_with(&format!("{id} "))))
            .unwrap_or_else(|| panic!("no row for node {id}:\n{out}"))
            .to_string()
    };
    assert!(row(leader).starts_with('*'), "the leader is marked:\n{out}");
    for id in [1, 2, 3].into_iter().filter(|&id| id != leader) {
        assert!(
            row(id).starts_with(' '),
            "only the leader is marked:\n{out}"
        );
    }
    assert!(out.contains("LAG"), "{out}");
    // The spear's row: two connections, two users, one group, serving.
    let spear = out
        .lines()
        .skip_while(|l| !l.starts_with("spears:"))
        .find(|l| l.trim_start().starts_with("4 "))
        .unwrap_or_else(|| panic!("no spear row:\n{out}"));
    let cols: Vec<&str> = spear.split_whitespace().collect();
    assert_eq!(cols[2..6], ["2", "2", "1", "serving"], "{spear}");

    let (ok, json_out, err) = crate::run_gru(&[
        "status",
        "--addr",
        &addr,
        "--key",
        gru_testkit::ADMIN_KEY,
        "--json",
    ])
    .await;
    assert!(ok, "gru status --json: {err}");
    let status: Value = serde_json::from_str(&json_out).expect("JSON");
    assert_eq!(status["cluster"]["leader_id"], leader);
    assert_eq!(status["spears"][0]["node_id"], 4);
    assert_eq!(status["spears"][0]["connections"], 2);

    // Two of three cores gone: the last one has no leader, and status says so by failing.
    let last = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    for id in [1, 2, 3].into_iter().filter(|&id| id != last) {
        cluster.kill(id);
    }
    let last_addr = cluster.http_addr(last).to_string();
    let (out, err) = cluster
        .wait_for(
            "gru status fails without a leader",
            Duration::from_secs(30),
            || async {
                let (ok, out, err) = crate::run_gru(&[
                    "status",
                    "--addr",
                    &last_addr,
                    "--key",
                    gru_testkit::ADMIN_KEY,
                ])
                .await;
                (!ok).then_some((out, err))
            },
        )
        .await;
    assert!(out.contains("leader none"), "{out}");
    assert!(err.contains("no leader"), "{err}");
    drop(clients);
}
