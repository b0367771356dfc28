//! `dashboard_browser`: three cores (with ticket and stat), two spears on the Redis relay and a
//! ticket + stat node that serves the dashboard, clients connected to both spears. In Chromium,
//! behind the admin login:
//!
//! - a page asked for without a session is sent to the login, which leads back to it;
//! - what the dashboard shows is what `/api/v1` answers (the script compares page, snapshot and
//!   the nodes' own answers back to back), and every node is listed with its roles, up;
//! - the charts sit on a time axis (a minute of samples fills a fifth of the window, not all
//!   of it) with a value axis;
//! - the user lookup finds a user's spears, connections and groups, and its disconnect button
//!   closes the user's clients (each is told, then closed); a session's POST from another
//!   origin is refused;
//! - a killed spear shows down within 5 s, and once restarted its chart has a gap;
//! - with two cores killed, a banner says the core has no quorum and the spears show degraded
//!   (amber, not a green "up"); with the cores back, the banner goes;
//! - the panels dim when the dashboard's node is frozen or stopped and light up again when its
//!   stream comes back (after a restart, through a new login).

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::{next_named, SioClient};
use gru_testkit::TestCluster;

use crate::Script;
use gru_testkit::tokens::spear_token;

/// The spear-only nodes.
const SPEARS: [u64; 2] = [4, 5];
/// The ticket + stat node whose dashboard the browser opens (not a Raft member: freezing it
/// disturbs no election).
const DASHBOARD: u64 = 6;
/// The group the drill-down opens.
const GROUP: u64 = 10;
/// The user the lookup finds and disconnects.
const LOOKED_UP: u64 = 301;
/// What the dashboard's operator types as the disconnect's reason.
const REASON: &str = "dashboard test: account review";

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
    let mut cluster = TestCluster::builder()
        .nodes(&[1, 2, 3], &roles)
        .spears(&[4, 5])
        .node(DASHBOARD, &["ticket", "stat"])
        .launch()
        .await;
    cluster
        .wait_for(
            "the dashboard's node in the member table",
            Duration::from_secs(30),
            || async { cluster.view(1).await?.node(DASHBOARD).map(|_| ()) },
        )
        .await;

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
    let admin = cluster.admin_addr(DASHBOARD);
    let mut script = Script::start(
        "dashboard.js",
        &[
            ("GRU_HTTP", admin.to_string()),
            ("GRU_ADMIN_KEY", gru_testkit::ADMIN_KEY.to_string()),
            ("SPEARS", spears),
            ("NODES", "1,2,3,4,5,6".to_string()),
            ("GROUP", GROUP.to_string()),
            ("LOOKUP_USER", LOOKED_UP.to_string()),
            ("REASON", REASON.to_string()),
            ("KILL", "5".to_string()),
        ],
    );

    // Behind the login: the page without a session went to /login, and back after it.
    let door = script.step("login", Duration::from_secs(60)).await;
    assert_eq!(door["redirected_to"], "/login?next=%2Fdashboard", "{door}");
    assert_eq!(door["after_login"], "/dashboard", "{door}");
    assert_eq!(door["json_without_session"], 401, "{door}");

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

    // Every node, ticket and stat nodes too, with its roles, up.
    let nodes = script.step("nodes", Duration::from_secs(30)).await;
    for (id, roles) in [
        (1, "core,ticket,stat"),
        (2, "core,ticket,stat"),
        (3, "core,ticket,stat"),
        (4, "spear"),
        (5, "spear"),
        (DASHBOARD, "ticket,stat"),
    ] {
        let node = &nodes["nodes"][id.to_string()];
        assert_eq!(node["state"], "up", "node {id}: {nodes}");
        assert_eq!(node["roles"], roles, "node {id}: {nodes}");
    }

    let drill = script.step("drill", Duration::from_secs(30)).await;
    assert_eq!(drill["total"], 3, "{drill}");
    assert_eq!(drill["by_spear"], json!({"4": 2, "5": 1}), "{drill}");

    // A real time axis: the samples since the page opened fill their share of the five
    // minutes, from where the first one sits; the value axis is labelled.
    let axis = script.step("axis", Duration::from_secs(60)).await;
    let watched = axis["watched_ms"].as_f64().expect("watched_ms");
    let first_x = axis["first_x"].as_f64().expect("first_x");
    assert!(
        (20_000.0..200_000.0).contains(&watched),
        "watched {watched} ms: {axis}"
    );
    let expected_x = 1.0 - watched / 300_000.0;
    assert!(
        (first_x - expected_x).abs() < 0.05,
        "the first sample at {first_x} of the width, {watched} ms ago: {axis}"
    );
    let labels = axis["y_labels"].as_array().expect("y_labels");
    assert_eq!(labels.len(), 3, "{axis}");
    let top: f64 = labels[0]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a number");
    assert!(top >= 5.0, "the top of the connections axis: {axis}");
    assert_eq!(labels[2], "0", "{axis}");

    // The user lookup: user 301 on both spears, in three groups.
    script.step("connect_user", Duration::from_secs(30)).await;
    let mut looked_up = [
        client(&cluster, 4, LOOKED_UP, &[20, 21]).await,
        client(&cluster, 4, LOOKED_UP, &[20]).await,
        client(&cluster, 5, LOOKED_UP, &[22]).await,
    ];
    let mut events: Vec<_> = looked_up.iter_mut().map(SioClient::take_events).collect();
    script.reply();
    let user = script.step("user", Duration::from_secs(30)).await;
    assert_eq!(user["count"], 3, "{user}");
    assert_eq!(user["spears"], "4,5", "{user}");
    assert_eq!(user["groups"], "20,21,22", "{user}");
    assert_eq!(
        user["by_spear"],
        json!({"4": {"count": 2, "groups": "20, 21"}, "5": {"count": 1, "groups": "22"}}),
        "{user}"
    );

    // The session cookie changes nothing from another origin — a page on another port of the
    // same host is the same site, so SameSite sends the cookie along — or from none.
    let session = script.step("session", Duration::from_secs(30)).await;
    let cookie = format!("gru_admin={}", session["cookie"].as_str().expect("cookie"));
    let url = format!("http://{admin}/api/v1/admin/users/{LOOKED_UP}/disconnect");
    let http = reqwest::Client::new();
    let elsewhere = format!("http://{}", cluster.sio_addr(4));
    for origin in [Some(elsewhere), None] {
        let mut forged = http.post(&url).header("cookie", &cookie).body("{}");
        if let Some(origin) = &origin {
            forged = forged.header("origin", origin);
        }
        let status = forged.send().await.expect("the node answers").status();
        assert_eq!(status, 403, "a session's POST from {origin:?}");
    }
    assert!(looked_up.iter().all(SioClient::is_open), "nothing closed");
    script.reply();

    // The disconnect button: each client is told why, then closed.
    let done = script.step("disconnected", Duration::from_secs(30)).await;
    assert_eq!(done["count"], 3, "{done}");
    for events in &mut events {
        let (_, notice) = next_named(events, &["server_disconnect"], Duration::from_secs(5))
            .await
            .expect("told within 5 s");
        assert_eq!(notice["msg"], REASON, "{notice}");
        assert_eq!(notice["data"]["reason"], "by_server", "{notice}");
    }
    for client in &mut looked_up {
        assert!(client.closed_within(Duration::from_secs(5)).await, "closed");
    }
    let gone = script.step("user_after", Duration::from_secs(30)).await;
    assert_eq!(gone["count"], 0, "{gone}");
    script.step("screenshot", Duration::from_secs(30)).await;

    // A spear killed shows down; restarted, its chart has a gap where it was down.
    let kill = script.step("kill", Duration::from_secs(30)).await;
    let before = kill["segments"].as_u64().expect("segments before");
    assert!(before >= 1, "spear 5's chart before the kill: {kill}");
    cluster.kill(5);
    script.reply();
    let down = script.step("down", Duration::from_secs(30)).await;
    let took = down["after_ms"].as_u64().expect("after_ms");
    assert!(took <= 5000, "the page showed spear 5 down after {took} ms");
    assert_eq!(down["spears"]["4"]["state"], "up", "{down}");
    assert_eq!(
        down["node_state"], "down",
        "node 5 in the node list: {down}"
    );
    script.step("screenshot", Duration::from_secs(30)).await;
    script.step("restart", Duration::from_secs(30)).await;
    cluster.restart(5);
    script.reply();
    let gap = script.step("gap", Duration::from_secs(90)).await;
    let after = gap["segments"].as_u64().expect("segments after");
    assert!(
        after > before,
        "no gap for the restart: {before} → {after}: {gap}"
    );
    assert_eq!(gap["polylines"], gap["segments"], "{gap}");

    // The core loses its quorum (the leader and one more killed): a banner says so, and the
    // spears show degraded, not up; with the cores back, the banner goes.
    script.step("quorum_loss", Duration::from_secs(30)).await;
    let (leader, _) = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await;
    let lost: Vec<u64> = std::iter::once(leader)
        .chain([1, 2, 3].into_iter().filter(|c| *c != leader).take(1))
        .collect();
    for id in &lost {
        cluster.kill(*id);
    }
    script.reply();
    let shown = script.step("no_quorum", Duration::from_secs(60)).await;
    assert!(
        shown["text"]
            .as_str()
            .is_some_and(|t| t.contains("No leader: the core has no quorum")),
        "{shown}"
    );
    for pill in shown["pills"].as_array().expect("pills") {
        assert!(
            pill.as_str().is_some_and(|p| p.contains("warn")),
            "a degraded spear drawn as {pill}: {shown}"
        );
    }
    script.step("screenshot", Duration::from_secs(30)).await;
    script.step("quorum_back", Duration::from_secs(30)).await;
    for id in &lost {
        cluster.restart(*id);
    }
    script.reply();
    script.step("quorum_healed", Duration::from_secs(90)).await;

    // The dashboard's node frozen: the stream goes silent, the panels dim; thawed, they
    // light up again.
    script.step("freeze", Duration::from_secs(30)).await;
    cluster.signal(DASHBOARD, "STOP");
    script.reply();
    let frozen = script.step("stale", Duration::from_secs(30)).await;
    cluster.signal(DASHBOARD, "CONT");
    assert!(
        frozen["panels"].as_u64().is_some_and(|n| n >= 5),
        "{frozen}"
    );
    assert_eq!(frozen["panels"], frozen["dimmed"], "{frozen}");
    assert_eq!(frozen["status_stale"], true, "{frozen}");
    script.step("thaw", Duration::from_secs(30)).await;
    script.reply();
    let live = script.step("live", Duration::from_secs(30)).await;
    assert_eq!(live["dimmed"], 0, "{live}");

    // Stopped: dimmed at once (the stream ended). Restarted, it forgot the session: the page
    // says so, and after a new login it is live again.
    script.step("stop", Duration::from_secs(30)).await;
    assert!(cluster.stop(DASHBOARD), "node {DASHBOARD} stopped cleanly");
    script.reply();
    let stopped = script.step("stopped", Duration::from_secs(30)).await;
    assert!(
        stopped["panels"].as_u64().is_some_and(|n| n >= 5),
        "{stopped}"
    );
    assert_eq!(stopped["panels"], stopped["dimmed"], "{stopped}");
    script.step("screenshot", Duration::from_secs(30)).await;
    script
        .step("restart_dashboard", Duration::from_secs(30))
        .await;
    cluster.restart(DASHBOARD);
    script.reply();
    let back = script.step("back", Duration::from_secs(90)).await;
    assert_eq!(back["dimmed"], 0, "{back}");
    assert_eq!(back["asked_to_sign_in"], true, "{back}");
    script.finish(Duration::from_secs(30)).await;
    talking.abort();
}
