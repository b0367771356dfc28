//! `playground_browser`: one core (with ticket and stat) and two spears on the Redis relay,
//! signing with `gru dev`'s public business secret so that the playground may mint token1s.
//! Two playground pages, two users on two different spears: a unicast and a group message go
//! through, and `online` lists both; the page's "kill my connection" drops the socket under the
//! SDK, which reconnects and resumes (a unicast sent meanwhile arrives once).

use std::time::Duration;

use crate::{playground_cluster, Script};

const GROUP: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_browser() {
    let cluster = playground_cluster().await;

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
