//! `dashboard_browser`: three cores (with ticket and stat) and two spears on the Redis relay,
//! clients connected to both spears; the dashboard in Chromium shows what `/api/v1` answers
//! (the script compares page, snapshot and the nodes' own answers back to back), and a killed
//! spear shows down within 5 s.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::{ClusterOptions, NodeSpec, TestCluster};

use crate::support::spear_token;
use crate::Script;

/// The spear-only nodes.
const SPEARS: [u64; 2] = [4, 5];
/// The group the drill-down opens.
const GROUP: u64 = 10;

/// A client of `uid` on `spear`, in `groups`.
async fn client(cluster: &TestCluster, spear: u64, uid: u64, groups: &[u64]) -> SioClient {
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = spear_token(uid, vec![spear], exp);
    let client = SioClient::connect(&cluster.sio_addr(spear), Some(json!({ "token": token })))
        .await
        .expect("connect with a spear token");
    for gid in groups {
        client.join(*gid).await;
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_browser() {
    let roles = ["core", "ticket", "stat"];
    let specs = [
        NodeSpec::with_roles(1, &roles),
        NodeSpec::with_roles(2, &roles),
        NodeSpec::with_roles(3, &roles),
        NodeSpec::spear(4),
        NodeSpec::spear(5),
    ];
    let (mut cluster, _, _) =
        TestCluster::launch(crate::gru(), &specs, ClusterOptions::default()).await;
    cluster.wait_spears(1, 2).await;

    // Only a node signing with `gru dev`'s public secret mints tokens.
    let dev = cluster
        .post(1, "/api/v1/dev/token", None, &[], r#"{"user_id":1}"#.into())
        .await
        .expect("node 1 answers");
    assert_eq!(
        dev.status(),
        404,
        "a dev token route without gru dev's secret"
    );

    // Spear 4: user 101 twice (groups 10, 11) and 102 (10). Spear 5: 201 (10) and 202.
    let _clients = [
        client(&cluster, 4, 101, &[10, 11]).await,
        client(&cluster, 4, 101, &[10]).await,
        client(&cluster, 5, 201, &[10]).await,
        client(&cluster, 5, 202, &[]).await,
    ];
    // User 102 talks to group 10 all along, so the rates and charts have something to show;
    // the numbers compared (connections, users, groups) do not move with it.
    let talker = client(&cluster, 4, 102, &[10]).await;
    let talking = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(150));
        for n in 0u64.. {
            tick.tick().await;
            let msg = json!({"type": 1, "target": {"id": GROUP, "type": 1}, "content": format!("tick {n}")});
            let _ = talker.call("msg", &msg.to_string().into()).await;
        }
    });
    // (users, groups) per spear, once stat reads them from presence.
    let expected = [(4, 2, 2), (5, 2, 1)];
    cluster
        .wait_for("presence written", Duration::from_secs(20), || async {
            let nodes: Value = cluster.get(1, "/api/v1/nodes").await?.json().await.ok()?;
            expected
                .iter()
                .all(|(id, users, groups)| {
                    nodes["nodes"].as_array().is_some_and(|all| {
                        all.iter().any(|n| {
                            n["node_id"] == *id && n["users"] == *users && n["groups"] == *groups
                        })
                    })
                })
                .then_some(())
        })
        .await;

    let spears = SPEARS.map(|s| s.to_string()).join(",");
    let mut script = Script::start(
        "dashboard.js",
        &[
            ("GRU_HTTP", cluster.http_addr(1).to_string()),
            ("SPEARS", spears),
            ("GROUP", GROUP.to_string()),
            ("KILL", "5".to_string()),
        ],
    );
    let agreed = script.step("agreed", Duration::from_secs(90)).await;
    // What the page showed is what this test set up, not only what /api/v1 said.
    let page = &agreed["page"];
    assert!(
        page["leader"]
            .as_u64()
            .is_some_and(|l| (1..=3).contains(&l)),
        "{page}"
    );
    assert!(page["term"].as_u64().is_some_and(|t| t >= 1), "{page}");
    for (id, connections, users, groups) in [(4, 3, 2, 2), (5, 2, 2, 1)] {
        let spear = &page["spears"][id.to_string()];
        assert_eq!(spear["state"], "up", "spear {id}: {spear}");
        assert_eq!(spear["connections"], connections, "spear {id}: {spear}");
        assert_eq!(spear["users"], users, "spear {id}: {spear}");
        assert_eq!(spear["groups"], groups, "spear {id}: {spear}");
    }
    let drill = script.step("drill", Duration::from_secs(30)).await;
    assert_eq!(drill["total"], 3, "{drill}");
    assert_eq!(drill["by_spear"], json!({"4": 2, "5": 1}), "{drill}");
    script.step("screenshot", Duration::from_secs(30)).await;

    script.step("kill", Duration::from_secs(30)).await;
    cluster.kill(5);
    script.reply();
    let down = script.step("down", Duration::from_secs(30)).await;
    let took = down["after_ms"].as_u64().expect("after_ms");
    assert!(took <= 5000, "the page showed spear 5 down after {took} ms");
    assert_eq!(down["spears"]["4"]["state"], "up", "{down}");
    script.step("screenshot", Duration::from_secs(30)).await;
    script.finish(Duration::from_secs(30)).await;
    talking.abort();
}
