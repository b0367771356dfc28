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

/// `server_api_key_budget`: an API key's message rate and body size hold: a request of more
/// messages than the burst is refused whole (400), sends past the rate get 429 with
/// `Retry-After`, and a body over `server_api.max_body_bytes` is refused with 413 before it is
/// held whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_api_key_budget() {
    let cluster = start(&[
        ("GRU_SERVER_API__MESSAGES_PER_SEC", "20"),
        ("GRU_SERVER_API__BURST", "20"),
        ("GRU_SERVER_API__MAX_BODY_BYTES", "65536"),
    ])
    .await;
    let url = format!("http://{}/api/v1/publish", cluster.http_addr(NODE));
    let http = reqwest::Client::new();
    let post = |body: String| http.post(&url).bearer_auth(API_KEY).body(body).send();

    let over_burst = post(to_users(21, 10)).await.expect("sent");
    assert_eq!(over_burst.status(), 400);
    let answer: Value = over_burst.json().await.expect("json");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server_api.burst")),
        "{answer}"
    );

    let mut limited = None;
    for _ in 0..40 {
        let resp = post(to_users(1, 10)).await.expect("sent");
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    let limited = limited.expect("40 messages at once were never rate limited");
    assert!(limited.headers().contains_key("retry-after"));
    let answer: Value = limited.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");

    let too_big = post(to_users(1, 100_000)).await.expect("sent");
    assert_eq!(too_big.status(), 413);
    let answer: Value = too_big.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
}
