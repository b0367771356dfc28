//! `idgen_http`: `GET /api/v1/ids?count=` serves ids on the leader and on followers (which
//! fetch them from the leader) and refuses bad counts with a clear 400 JSON error.

use gru_testkit::{TestCluster, CORES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_http() {
    let (cluster, leader, _) = TestCluster::three_cores(gru_testkit::gru()).await;
    let http = gru_testkit::admin_http();

    let mut last = 0u64;
    for id in [
        leader,
        CORES
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower"),
    ] {
        let base = format!("http://{}/api/v1/ids", cluster.http_addr(id));
        for (query, want) in [
            ("", 1usize),
            ("?count=1", 1),
            ("?count=250", 250),
            ("?count=10000", 10_000),
        ] {
            let resp = http
                .get(format!("{base}{query}"))
                .send()
                .await
                .expect("answer");
            assert_eq!(resp.status(), 200, "node {id} {query}");
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["mode"], "strict");
            let ids: Vec<u64> = body["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_u64().expect("a number"))
                .collect();
            assert_eq!(ids.len(), want, "node {id} {query}");
            assert!(
                ids.windows(2).all(|w| w[1] == w[0] + 1),
                "a contiguous block"
            );
            assert!(ids[0] > last, "ids keep increasing across requests");
            assert!(
                *ids.last().expect("ids") < 1 << 53,
                "strict ids survive JSON.parse"
            );
            last = *ids.last().expect("ids");
        }
        for query in [
            "?count=0",
            "?count=-1",
            "?count=abc",
            "?count=1.5",
            "?count=",
            "?count=10001",
            "?count=99999999999999999999",
        ] {
            let resp = http
                .get(format!("{base}{query}"))
                .send()
                .await
                .expect("answer");
            assert_eq!(resp.status(), 400, "node {id} {query}");
            let body: serde_json::Value = resp.json().await.expect("json error");
            assert_eq!(body["error"]["code"], "bad_request", "node {id} {query}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("between 1 and 10000"),
                "node {id} {query}: {message}"
            );
        }
    }
}
