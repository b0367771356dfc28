//! `dev_mode`: `gru dev` (its HTTP address given by name, `localhost:PORT`) serves /healthz and
//! a one-voter cluster led by itself, answers the stat API from its one spear's own state (no
//! Redis), tells a ticket caller whose token1 was issued for another name so, and stops
//! cleanly on SIGTERM.

use std::time::Duration;

use gru::services::auth::{Claims, TokenKey, TokenKind};
use serde_json::json;

use gru_testkit::ports::free_port;
use gru_testkit::sio::SioClient;
use gru_testkit::{wait_for, KillOnDrop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, sio) = (free_port(), free_port());
    let log = dir.path().join("dev.log");
    let data = dir.path().join("data");
    let mut cmd = crate::gru().dev(&data, &format!("localhost:{http}"), sio);
    let mut dev = KillOnDrop::spawn("gru dev", &mut cmd, &log).expect("spawn gru dev");
    // gru dev's admin surface shares its address, behind its public dev key.
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", gru::config::DEV_ADMIN_KEY);
    headers.insert(
        reqwest::header::AUTHORIZATION,
        bearer.parse().expect("a header value"),
    );
    let http_client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{http}");

    let health: serde_json::Value = wait_for("/healthz", Duration::from_secs(20), || async {
        let resp = http_client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.json().await.ok()
    })
    .await;
    assert_eq!(health["status"], "ok");

    let view: gru::raft::ClusterView = wait_for("a leader", Duration::from_secs(20), || async {
        let resp = http_client
            .get(format!("{base}/api/v1/cluster"))
            .send()
            .await
            .ok()?;
        let view: gru::raft::ClusterView = resp.json().await.ok()?;
        view.leader_id.is_some().then_some(view)
    })
    .await;
    assert_eq!(view.voters, vec![1]);
    assert_eq!(view.leader_id, Some(1));

    let bad = http_client
        .get(format!("{base}/api/v1/cluster?consistency=sometimes"))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "bad_request");

    // Without the key the admin routes are shut; and a page of another site reaching this
    // loopback listener through its own name (DNS rebinding) is turned away whatever it sends.
    let anonymous = reqwest::Client::new()
        .get(format!("{base}/api/v1/cluster"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
    let rebound = http_client
        .get(format!("{base}/api/v1/cluster"))
        .header("host", format!("attacker.example:{http}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(rebound.status(), 421, "a foreign Host is refused");

    // Presence without Redis: the stat API reads the spear's roster in process.
    let token = TokenKey::new(TokenKind::Spear, b"INSECURE-dev-spear-secret").sign(Claims {
        typ: TokenKind::Spear,
        uid: 77,
        name: "dev".into(),
        app: "web".into(),
        exp: gru::clock::unix_ms() / 1000 + 600,
        groups: None,
        spears: Some(vec![1]),
    });
    let client = SioClient::connect(&format!("127.0.0.1:{sio}"), Some(json!({"token": token})))
        .await
        .expect("connect to the dev spear");
    let joined = client
        .call("join", &json!({"groups": [10]}))
        .await
        .expect("join ack");
    assert_eq!(joined["success"], true, "{joined}");
    let get_json = |path: &str| {
        let url = format!("{base}{path}");
        let http_client = http_client.clone();
        async move {
            let resp = http_client.get(url).send().await.expect("answer");
            resp.json::<serde_json::Value>().await.expect("json")
        }
    };
    assert_eq!(
        get_json("/getGroupStat?groupId=10").await,
        json!({"groupId": 10, "userIds": [77]})
    );
    assert_eq!(
        get_json("/api/v1/nodes").await,
        json!({"nodes": [{"node_id": 1, "users": 1, "groups": 1}]})
    );
    drop(client);

    // A token1 of `gru token --dev` for user 77 named "dev", presented under another name:
    // refused with 711, saying so in the caller's own parameter names.
    let out = crate::gru()
        .command()
        .args(["token", "--dev", "--user", "77", "--name", "dev"])
        .output()
        .expect("gru token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token1 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let gru_ticket = get_json(&format!(
        "/ticket?userId=77&userName=someone&appType=web&token1={token1}"
    ))
    .await;
    assert_eq!(gru_ticket["errorCode"], 711, "{gru_ticket}");
    assert_eq!(
        gru_ticket["msg"], "token1 invalid: it was issued for another userName",
        "{gru_ticket}"
    );
    let modern = get_json(&format!(
        "/api/v1/ticket?user_id=77&user_name=someone&app_type=web&token={token1}"
    ))
    .await;
    assert_eq!(modern["error"]["code"], "bad_token", "{modern}");
    assert_eq!(
        modern["error"]["message"], "token1 invalid: it was issued for another user_name",
        "{modern}"
    );
    // The same token under its own name gets a ticket (once ticket has seen the spear).
    let good = format!("/ticket?userId=77&userName=dev&appType=web&token1={token1}");
    wait_for(
        "a ticket for the token's own name",
        Duration::from_secs(20),
        || async {
            let answer = get_json(&good).await;
            (answer["errorCode"] == 0).then_some(())
        },
    )
    .await;

    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        printed.contains(&format!("http://127.0.0.1:{http}/ticket")),
        "dev prints its URLs"
    );

    let status = dev
        .stop(Duration::from_secs(15))
        .expect("gru dev exits within 15 s of SIGTERM");
    assert!(status.success(), "gru dev exits 0 after SIGTERM");
    assert!(std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("shutdown complete"));
}
