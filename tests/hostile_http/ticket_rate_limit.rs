//! `ticket_rate_limit`: one address asking ticket too often gets 429 with `Retry-After` and a
//! JSON error (Gru's envelope on `/ticket`), while other addresses are served.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use crate::node::{start, NODE};
use gru_testkit::tokens::token1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_rate_limit() {
    let cluster = start(&[
        ("GRU_TICKET__REQUESTS_PER_IP_PER_SEC", "2"),
        ("GRU_TICKET__BURST", "4"),
    ])
    .await;
    let base = format!("http://{}", cluster.http_addr(NODE));
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
            .build()
            .expect("client")
    };
    let flooder = from([127, 0, 0, 1]);
    let t1 = token1(7, "seven");
    let legacy = format!("{base}/ticket?userId=7&userName=seven&appType=web&token1={t1}");
    let modern = format!("{base}/api/v1/ticket?user_id=7&user_name=seven&app_type=web&token={t1}");

    let mut statuses = BTreeMap::new();
    let mut limited = None;
    for i in 0..12 {
        let url = if i % 2 == 0 { &legacy } else { &modern };
        let resp = flooder.get(url).send().await.expect("answered");
        let status = resp.status().as_u16();
        *statuses.entry(status).or_insert(0) += 1;
        if status == 429 {
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .expect("Retry-After in whole seconds");
            assert!(retry >= 1, "{retry}");
            let body: Value = resp.json().await.expect("a JSON error");
            if url == &legacy {
                assert_eq!(body["success"], false, "{body}");
                assert_eq!(body["errorCode"], 429, "{body}");
            } else {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                assert!(body["error"]["retry_after_ms"].as_u64().is_some(), "{body}");
            }
            limited.get_or_insert(i);
        } else {
            assert_eq!(status, 200, "request {i}");
        }
    }
    // The burst of 4 passes (plus what 2/s refills while the loop runs); the rest is refused.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= 4,
        "the burst is served: {statuses:?}"
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 4,
        "the flood is refused: {statuses:?}"
    );

    let other = from([127, 0, 0, 2]);
    let body: Value = other
        .get(&legacy)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(body["success"], true, "another address is served: {body}");
}
