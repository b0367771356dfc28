//! `relay_cross_node`: two spears on one Redis. Unicast both ways, a group broadcast reaching
//! every member connection on both spears exactly once (the sender's included), ids from idgen
//! increasing, and `online` / the stat API listing users from both spears.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    connect, counted, drain, get_json, online_event, send, spear_cluster, wait_group_stat, STAT,
};
use gru_testkit::{ClusterOptions, TestCluster};

const QUIET: Duration = Duration::from_millis(500);

/// The journey on a cluster whose spears are nodes 1 and 2 (used on a Redis Cluster too).
pub async fn journey(cluster: &TestCluster) {
    let (alice, bob, carol) = (101, 102, 103);
    // Alice has a connection on each spear; Bob is on spear 2, Carol on spear 1.
    let mut alice1 = connect(cluster, 1, alice).await;
    let mut alice2 = connect(cluster, 2, alice).await;
    let mut bob2 = connect(cluster, 2, bob).await;
    let mut carol1 = connect(cluster, 1, carol).await;

    // Unicast spear 1 → spear 2, then back to both of Alice's connections.
    let ack = send(&alice1, 0, bob, "to bob").await;
    assert_eq!(ack["success"], true, "{ack}");
    let first_id = ack["data"]["id"].as_u64().expect("id");
    let got = drain(&mut bob2, QUIET).await;
    assert_eq!(got.len(), 1, "bob gets the message once: {got:?}");
    assert_eq!(got[0]["id"], first_id);
    assert_eq!(got[0]["fromId"], alice);
    assert_eq!(got[0]["target"]["id"], bob.to_string());

    let ack = send(&bob2, 0, alice, "to alice").await;
    assert_eq!(ack["success"], true, "{ack}");
    let second_id = ack["data"]["id"].as_u64().expect("id");
    assert!(second_id > first_id, "ids increase across spears");
    for (name, c) in [("alice@1", &mut alice1), ("alice@2", &mut alice2)] {
        let got = drain(c, QUIET).await;
        assert_eq!(counted(&got).get("to alice"), Some(&1), "{name}: {got:?}");
        assert_eq!(got.len(), 1, "{name}: {got:?}");
    }
    assert!(
        drain(&mut carol1, QUIET).await.is_empty(),
        "carol gets nothing"
    );

    // Group 10 across both spears.
    for c in [&alice1, &alice2, &bob2, &carol1] {
        c.join(10).await;
    }
    let ack = send(&carol1, 1, 10, "hello class").await;
    assert_eq!(ack["success"], true, "{ack}");
    let group_id = ack["data"]["id"].as_u64().expect("id");
    for (name, c) in [
        ("alice@1", &mut alice1),
        ("alice@2", &mut alice2),
        ("bob@2", &mut bob2),
        ("carol@1 (sender)", &mut carol1),
    ] {
        let got = drain(c, QUIET).await;
        assert_eq!(
            got.len(),
            1,
            "{name} gets the broadcast exactly once: {got:?}"
        );
        assert_eq!(got[0]["id"], group_id, "{name}");
        assert_eq!(got[0]["msgType"], 1);
    }

    // Presence: the union over both spears, through the event on either spear and the API.
    wait_group_stat(cluster, 10, &[alice, bob, carol], Duration::from_secs(10)).await;
    assert_eq!(online_event(&bob2, 10).await, [alice, bob, carol]);
    assert_eq!(online_event(&carol1, 10).await, [alice, bob, carol]);

    let (status, body) = get_json(cluster, STAT, "/api/v1/groups/10/online")
        .await
        .expect("api");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_ids"], serde_json::json!([alice, bob, carol]));
    assert_eq!(body["by_spear"]["1"], serde_json::json!([alice, carol]));
    assert_eq!(body["by_spear"]["2"], serde_json::json!([alice, bob]));

    let (_, body) = get_json(cluster, STAT, &format!("/api/v1/users/{alice}"))
        .await
        .expect("api");
    assert_eq!(body["online"], true, "{body}");
    let spears: Vec<u64> = body["spears"]
        .as_array()
        .expect("spears")
        .iter()
        .filter_map(|s| s["node_id"].as_u64())
        .collect();
    assert_eq!(spears, [1, 2], "{body}");

    let (_, body) = get_json(cluster, STAT, "/api/v1/nodes").await.expect("api");
    let nodes = body["nodes"].as_array().expect("nodes");
    let users = |id: u64| {
        nodes
            .iter()
            .find(|n| n["node_id"] == id)
            .map(|n| (n["users"].clone(), n["groups"].clone()))
    };
    assert_eq!(users(1), Some((Value::from(2), Value::from(1))), "{body}");
    assert_eq!(users(2), Some((Value::from(2), Value::from(1))), "{body}");

    let (_, body) = get_json(cluster, STAT, "/api/v1/nodes/2/groups")
        .await
        .expect("api");
    assert_eq!(
        body["groups"],
        serde_json::json!([{"group_id": 10, "users": 2}]),
        "{body}"
    );

    let (status, body) = get_json(cluster, STAT, "/getGroupStat?groupId=ten")
        .await
        .expect("api");
    assert_eq!(status, 400, "{body}");

    // Bob leaves: gone from the group's presence, and no longer gets its messages.
    drop(bob2);
    wait_group_stat(cluster, 10, &[alice, carol], Duration::from_secs(10)).await;
    let (_, body) = get_json(cluster, STAT, &format!("/api/v1/users/{bob}"))
        .await
        .expect("api");
    assert_eq!(body["online"], false, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_cross_node() {
    let cluster = spear_cluster(&[1, 2], ClusterOptions::default()).await;
    journey(&cluster).await;
}

/// The same journey with every node on one runtime thread (`GRU_WORKER_THREADS=1`), which runs
/// gru on tokio's single-threaded scheduler: the mode `gru-bench relay` measures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_cross_node_one_thread() {
    let mut options = ClusterOptions::default();
    options.env.push(("GRU_WORKER_THREADS".into(), "1".into()));
    let cluster = spear_cluster(&[1, 2], options).await;
    journey(&cluster).await;
}
