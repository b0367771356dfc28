//! `ticket_api`: Gru's `GET /ticket` and `GET /api/v1/ticket` on a core node and on a
//! ticket-only node, over the spears of the Raft registry: placement with backups, every error
//! code, and a killed spear never handed out after its lease ended.

use std::time::{Duration, Instant};

use serde_json::Value;

use gru_testkit::{TestCluster, LEASE_TTL_MS};

async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_api() {
    let mut cluster = TestCluster::builder()
        .node(1, &["core", "ticket"])
        .cores(&[2, 3])
        .spears(&[4, 5])
        .node(6, &["ticket"])
        .launch()
        .await;

    let out = cluster
        .gru()
        .command()
        .args(["token", "--config"])
        .arg(cluster.config_path())
        .args(["--user", "123", "--name", "Zhang", "--app", "web"])
        .output()
        .expect("gru token");
    assert!(
        out.status.success(),
        "gru token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token1 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let query = format!("userId=123&userName=Zhang&appType=web&token1={token1}");

    let sio_urls = [4, 5].map(|id| format!("http://127.0.0.1:{}", cluster.ports(id).sio));
    let sio = |id: u64| sio_urls[(id - 4) as usize].clone();
    for node in [1, 6] {
        let url = format!("http://{}/ticket?{query}", cluster.http_addr(node));
        let body = cluster
            .wait_for(
                &format!("a ticket from node {node} with both spears"),
                Duration::from_secs(20),
                || async {
                    let (_, body) = get_json(&url).await;
                    (body["success"] == true && body["data"]["backupNodes"].as_array()?.len() == 1)
                        .then_some(body)
                },
            )
            .await;
        assert_eq!(body["errorCode"], 0);
        let addr = body["data"]["addr"].as_str().expect("addr").to_string();
        let backup = body["data"]["backupNodes"][0]["addr"]
            .as_str()
            .expect("backup")
            .to_string();
        let mut both = vec![addr.clone(), backup];
        both.sort();
        let mut want = vec![sio(4), sio(5)];
        want.sort();
        assert_eq!(both, want, "node {node}: a spear and the other as backup");
        assert!(body["data"]["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("v1.")));
        assert!(body["data"]["time"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000));
    }

    let base = format!("http://{}", cluster.http_addr(1));
    for (q, code) in [
        ("userName=Zhang&appType=web&token1=x".to_string(), 710),
        (
            format!("userId=&userName=Zhang&appType=web&token1={token1}"),
            710,
        ),
        (
            format!("userId=124&userName=Zhang&appType=web&token1={token1}"),
            711,
        ),
        (
            "userId=123&userName=Zhang&appType=web&token1=forged".to_string(),
            711,
        ),
    ] {
        let (status, body) = get_json(&format!("{base}/ticket?{q}")).await;
        assert_eq!(
            (status, body["success"].clone(), body["errorCode"].clone()),
            (200, Value::Bool(false), code.into()),
            "{q}"
        );
    }
    let post = reqwest::Client::new()
        .post(format!("{base}/ticket?{query}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(post.status(), 405);

    let (status, modern) = get_json(&format!(
        "{base}/api/v1/ticket?user_id=123&user_name=Zhang&app_type=web&token={token1}"
    ))
    .await;
    assert_eq!(status, 200, "{modern}");
    assert!(modern["spear"]["url"]
        .as_str()
        .is_some_and(|u| u == sio(4) || u == sio(5)));
    let (status, bad) = get_json(&format!(
        "{base}/api/v1/ticket?user_id=123&user_name=Zhang&app_type=web&token=nope"
    ))
    .await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (401, Value::from("bad_token"))
    );

    // Kill the user's spear: once its lease has ended it is never handed out again.
    let (_, body) = get_json(&format!("{base}/ticket?{query}")).await;
    let primary = if body["data"]["addr"] == sio(4) { 4 } else { 5 };
    let other = 9 - primary;
    cluster.kill(primary);
    let killed = Instant::now();
    let lease_end = Duration::from_millis(LEASE_TTL_MS);
    while killed.elapsed() < lease_end + Duration::from_secs(2) {
        let (_, body) = get_json(&format!("{base}/ticket?{query}")).await;
        if killed.elapsed() > lease_end {
            assert_eq!(
                body["data"]["addr"],
                sio(other),
                "spear {primary} handed out after its lease ended"
            );
        }
        // Pace of a watch until 2 s past the lease.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.kill(other);
    let (_, body) = cluster
        .wait_for("no spear left", Duration::from_secs(20), || async {
            let (s, b) = get_json(&format!("{base}/ticket?{query}")).await;
            (b["errorCode"] == 701).then_some((s, b))
        })
        .await;
    assert_eq!(body["success"], false);
}
