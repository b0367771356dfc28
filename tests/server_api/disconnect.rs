//! `server_api_disconnect`: a user's connections on every spear are listed (spear, transport,
//! groups, address) through either spear, and closed by one request: each client is told why
//! (`server_disconnect`, reason `by_server`, the request's message) and is closed; another
//! user's connection on the same spear stays and still gets messages.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::next_named;
use gru_testkit::{ClusterOptions, API_KEY};

use crate::common::{client_on, contents, get_as, msgs, post, two_spears};

const USER: u64 = 201;
const OTHER: u64 = 202;
const GROUP: u64 = 60;

fn spears_of(answer: &Value) -> Vec<u64> {
    let mut spears: Vec<u64> = answer["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["spear"].as_u64().expect("spear"))
        .collect();
    spears.sort_unstable();
    spears
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_disconnect() {
    let cluster = two_spears(ClusterOptions::default()).await;
    let (mut c1, mut e1) = client_on(&cluster, 2, USER, &[GROUP]).await;
    let (mut c2, mut e2) = client_on(&cluster, 2, USER, &[]).await;
    let (mut c3, mut e3) = client_on(&cluster, 3, USER, &[GROUP]).await;
    let (other, mut other_events) = client_on(&cluster, 3, OTHER, &[GROUP]).await;

    // Listed through either spear: three connections, on both spears.
    let path = format!("/api/v1/users/{USER}/connections");
    for node in [2, 3] {
        let (status, answer) = get_as(&cluster, node, &path, API_KEY).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["count"], 3, "{answer}");
        assert_eq!(spears_of(&answer), [2, 2, 3], "{answer}");
        assert_eq!(answer["complete"], true, "{answer}");
        assert_eq!(answer["spears"], json!([2, 3]), "{answer}");
        let first = &answer["connections"][0];
        assert_eq!(first["transport"], "websocket", "{first}");
        assert!(
            first["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.")),
            "{first}"
        );
        assert!(
            first["connected_at_ms"].as_u64().is_some_and(|t| t > 0),
            "{first}"
        );
        let groups: Vec<&Value> = answer["connections"]
            .as_array()
            .expect("connections")
            .iter()
            .map(|c| &c["groups"])
            .collect();
        assert_eq!(
            groups.iter().filter(|g| **g == &json!([GROUP])).count(),
            2,
            "{answer}"
        );
    }

    // Bad requests.
    let (status, _, answer) =
        post(&cluster, 2, "/api/v1/users/abc/disconnect", &[], &json!({})).await;
    assert_eq!(status, 400, "{answer}");
    let long = json!({"reason": "x".repeat(300)});
    let (status, _, answer) = post(
        &cluster,
        2,
        &format!("/api/v1/users/{USER}/disconnect"),
        &[],
        &long,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        c1.is_open() && c2.is_open() && c3.is_open(),
        "nothing closed by a bad request"
    );

    // Closed everywhere, by a request to spear 3.
    let (status, _, answer) = post(
        &cluster,
        3,
        &format!("/api/v1/users/{USER}/disconnect"),
        &[],
        &json!({"reason": "account suspended"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["disconnected"], 3, "{answer}");
    assert_eq!(spears_of(&answer), [2, 2, 3], "{answer}");
    for events in [&mut e1, &mut e2, &mut e3] {
        let (_, notice) = next_named(events, &["server_disconnect"], Duration::from_secs(5))
            .await
            .expect("told within 5 s");
        assert_eq!(notice["msg"], "account suspended", "{notice}");
        assert_eq!(notice["data"]["reason"], "by_server", "{notice}");
        assert!(notice["data"].get("reconnect").is_none(), "{notice}");
    }
    for client in [&mut c1, &mut c2, &mut c3] {
        assert!(client.closed_within(Duration::from_secs(5)).await, "closed");
    }
    let (status, answer) = get_as(&cluster, 2, &path, API_KEY).await;
    assert_eq!((status, &answer["count"]), (200, &json!(0)), "{answer}");

    // The other user on spear 3 is untouched.
    assert!(other.is_open());
    let (status, _, answer) = post(
        &cluster,
        2,
        "/api/v1/publish",
        &[],
        &json!({"to": {"group": GROUP}, "content": "still-here"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let got = msgs(&mut other_events, Duration::from_millis(1500)).await;
    assert_eq!(contents(&got), ["still-here"], "{got:?}");
}
