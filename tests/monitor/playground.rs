//! `playground_browser`: one core (with ticket and stat) and two spears on the Redis relay,
//! signing with `gru dev`'s public business secret so that the playground may mint token1s.
//! Two playground pages, two users on two different spears: a unicast and a group message go
//! through, and `online` lists both; the page's "kill my connection" drops the socket under the
//! SDK, which reconnects and resumes (a unicast sent meanwhile arrives once).

use std::time::Duration;

use gru_testkit::{ClusterOptions, TestCluster, API_KEY, API_KEY_NAME, SPEAR_SECRET};

use crate::Script;

const GROUP: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_browser() {
    let options = ClusterOptions {
        auth_toml: Some(format!(
            "business_secret = \"INSECURE-dev-business-secret\"\n\
             spear_secret = \"{SPEAR_SECRET}\"\n\
             [[auth.api_keys]]\nname = \"{API_KEY_NAME}\"\nsecret = \"{API_KEY}\""
        )),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat"])
        .spears(&[2, 3])
        .options(options)
        .launch()
        .await;
    // The ticket places users only on spears it knows live (lease and gossip).
    cluster
        .wait_for("the spears announced", Duration::from_secs(30), || async {
            let view = cluster.view(1).await?;
            [2, 3]
                .iter()
                .all(|s| view.node(*s).is_some_and(|n| !n.grpc.is_empty()))
                .then_some(())
        })
        .await;

    let mut script = Script::start(
        "playground.js",
        &[
            ("GRU_HTTP", cluster.admin_addr(1).to_string()),
            ("GRU_ADMIN_KEY", gru_testkit::ADMIN_KEY.to_string()),
            ("GROUP", GROUP.to_string()),
        ],
    );
    let a = script.step("connected", Duration::from_secs(60)).await;
    let b = script.step("connected", Duration::from_secs(60)).await;
    assert_ne!(a["spear"], b["spear"], "two spears: {a} {b}");
    let unicast = script.step("unicast", Duration::from_secs(30)).await;
    assert_eq!(unicast["to"], b["user"]);
    script.step("broadcast", Duration::from_secs(30)).await;
    let online = script.step("online", Duration::from_secs(30)).await;
    let users: Vec<u64> = serde_json::from_value(online["users"].clone()).expect("user ids");
    for user in [&a["user"], &b["user"]] {
        let user = user.as_u64().expect("a user id");
        assert!(users.contains(&user), "{user} online in {users:?}");
    }
    let killed = script.step("kill_button", Duration::from_secs(60)).await;
    assert_eq!(
        killed["reason"], "transport close",
        "a lost connection: {killed}"
    );
    script.step("screenshot", Duration::from_secs(30)).await;
    script.step("screenshot", Duration::from_secs(30)).await;
    script.finish(Duration::from_secs(30)).await;
}
