//! `server_api_amplification`: one server-API request cannot make a spear hold more than its
//! body. A list of 20,000 users with a 60 KB content (a 169 KB body) used to be copied once per
//! user before `server_api.max_batch` was checked — 1.08 GB at its peak; it is refused with 400
//! from what the body holds, in one request and spread over a batch.

use serde_json::Value;

use crate::node::{start, NODE};
use gru_testkit::API_KEY;

/// A publish body for users `0..n` with a content of `size` bytes.
fn to_users(n: usize, size: usize) -> String {
    let users: Vec<String> = (0..n).map(|u| u.to_string()).collect();
    format!(
        r#"{{"to":{{"users":[{}]}},"content":"{}"}}"#,
        users.join(","),
        "x".repeat(size)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_amplification() {
    let cluster = start(&[]).await;
    let base = format!("http://{}", cluster.http_addr(NODE));
    let http = reqwest::Client::new();
    let post = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .bearer_auth(API_KEY)
            .body(body)
            .send()
    };
    // Warm up: what one ordinary request costs is not the finding.
    let ok = post("/api/v1/publish", to_users(3, 100))
        .await
        .expect("sent");
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap_or_default());
    let before = cluster.peak_rss_kib(NODE).expect("running");

    let big = to_users(20_000, 60_000);
    assert!(big.len() < 200_000, "a {} byte body", big.len());
    let refused = post("/api/v1/publish", big).await.expect("sent");
    assert_eq!(refused.status(), 400);
    let answer: Value = refused.json().await.expect("json");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("server_api.max_batch"), "{answer}");

    // The same spread over a batch: 50 messages of 400 users each (a 3 MB body).
    let messages: Vec<String> = (0..50).map(|_| to_users(400, 60_000)).collect();
    let batch = format!(r#"{{"messages":[{}]}}"#, messages.join(","));
    let refused = post("/api/v1/publish/batch", batch).await.expect("sent");
    assert_eq!(refused.status(), 400);

    let after = cluster.peak_rss_kib(NODE).expect("running");
    let grew_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!("server_api_amplification: peak RSS {before} KiB before, {after} KiB after");
    assert!(
        grew_mib < 20.0,
        "the spear's peak RSS grew {grew_mib:.1} MiB"
    );
    assert!(cluster.running().contains(&NODE), "the spear is alive");
}
