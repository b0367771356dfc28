//! `playground_resume`: the playground on the JavaScript SDK in Chromium, on the cluster shape of
//! `playground_browser` (one core with ticket and stat, two spears on the Redis relay, `gru dev`'s
//! business secret so that the page may mint token1s). Two users on two spears chat — unicasts
//! both ways and a group — then:
//!
//! - the first user's spear is killed (`kill -9`, when the script reports `kill`); what both
//!   write while that user is away (its page offline until the other's sends are acknowledged)
//!   and after its client resumed on the surviving spear shows up in each receiver's
//!   conversation exactly once and in the order sent, what was sent to it while away by the
//!   resume's replay (`tests/e2e/browser/playground_resume.js` checks it in the pages);
//! - 3,000 messages are published to that user within a second through the server API (several
//!   `POST /api/v1/publish/batch` requests spread over the second): they all arrive, and clicks
//!   in the page meanwhile are answered within 200 ms.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use gru_testkit::API_KEY;

use crate::{playground_cluster, Script};

const GROUP: u64 = 10;
/// Messages published to one user within a second.
const FLOOD: usize = 3000;
/// Batch requests they go in, evenly spread over the second: a batch of 100 is well below
/// the spear's per-connection send queue (`spear.send_queue_packets`, 256).
const FLOOD_REQUESTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_resume() {
    let mut cluster = playground_cluster().await;

    let mut script = Script::start(
        "playground_resume.js",
        &[
            ("GRU_HTTP", cluster.admin_addr(1).to_string()),
            ("GRU_ADMIN_KEY", gru_testkit::ADMIN_KEY.to_string()),
            ("GROUP", GROUP.to_string()),
            ("FLOOD", FLOOD.to_string()),
        ],
    );
    let a = script.step("connected", Duration::from_secs(60)).await;
    let b = script.step("connected", Duration::from_secs(60)).await;
    assert_ne!(a["spear"], b["spear"], "two spears: {a} {b}");
    script.step("chatted", Duration::from_secs(60)).await;

    let kill = script.step("kill", Duration::from_secs(30)).await;
    let doomed = kill["spear"].as_u64().expect("the spear to kill");
    assert_eq!(kill["spear"], a["spear"], "the first user's spear");
    cluster.kill(doomed);
    script.reply();
    let resumed = script.step("resumed", Duration::from_secs(120)).await;
    assert_eq!(
        resumed["spear_after"], b["spear"],
        "resumed on the survivor"
    );
    assert!(
        resumed["replayed"].as_u64() > Some(0),
        "messages came by the replay: {resumed}"
    );
    script.step("screenshot", Duration::from_secs(30)).await;

    let flood = script.step("flood", Duration::from_secs(30)).await;
    let user = flood["user"].as_u64().expect("the flooded user");
    let survivor = b["spear"].as_u64().expect("a spear id");
    let url = format!(
        "http://{}/api/v1/publish/batch",
        cluster.server_api_addr(survivor)
    );
    script.reply();
    let (took, accepted) = publish_flood(&url, user).await;
    eprintln!("published {accepted} messages to user {user} in {took:?}");
    assert_eq!(accepted, FLOOD, "every message accepted");
    assert!(
        took < Duration::from_millis(1500),
        "{FLOOD} messages within about a second, not {took:?}"
    );
    let flooded = script.step("flooded", Duration::from_secs(120)).await;
    assert_eq!(flooded["received"].as_u64(), Some(FLOOD as u64));
    assert!(
        flooded["worst_click_ms"]
            .as_f64()
            .is_some_and(|worst| worst < 200.0),
        "clicks answered within 200 ms: {flooded}"
    );
    script.step("screenshot", Duration::from_secs(30)).await;
    script.step("screenshot", Duration::from_secs(30)).await;
    script.finish(Duration::from_secs(30)).await;
}

/// Publishes [`FLOOD`] messages to `user` through the server API at `url`, in
/// [`FLOOD_REQUESTS`] batches started evenly over one second; how long it took until the last
/// answer, and how many messages were accepted.
async fn publish_flood(url: &str, user: u64) -> (Duration, usize) {
    let http = reqwest::Client::new();
    let per = FLOOD / FLOOD_REQUESTS;
    let start = Instant::now();
    let first = tokio::time::Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..FLOOD_REQUESTS {
        let messages: Vec<Value> = (0..per)
            .map(|j| json!({"to": {"user": user}, "content": format!("flood {}", i * per + j + 1)}))
            .collect();
        let body = json!({ "messages": messages }).to_string();
        let request = http
            .post(url)
            .header("authorization", format!("Bearer {API_KEY}"))
            .header("content-type", "application/json")
            .body(body);
        let due =
            first + Duration::from_secs(1) * u32::try_from(i).expect("few") / FLOOD_REQUESTS as u32;
        requests.spawn(async move {
            tokio::time::sleep_until(due).await;
            let resp = request.send().await.expect("the server API answers");
            let status = resp.status();
            let answer: Value = resp.json().await.expect("a JSON answer");
            assert!(status.is_success(), "batch {i}: {status} {answer}");
            assert_eq!(answer["failed"].as_u64(), Some(0), "batch {i}: {answer}");
            answer["accepted"].as_u64().expect("an accepted count")
        });
    }
    let mut accepted = 0;
    while let Some(done) = requests.join_next().await {
        accepted += usize::try_from(done.expect("a batch request")).expect("a count");
    }
    (start.elapsed(), accepted)
}
