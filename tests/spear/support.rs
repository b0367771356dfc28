//! Shared steps: tokens, tickets, authenticated clients.

use std::time::Duration;

use gru::services::auth::{Claims, TokenKey, TokenKind};
use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::TestCluster;

pub use gru_testkit::{BUSINESS_SECRET, SPEAR_SECRET};

/// A token1 as a business system would mint it.
pub fn token1(uid: u64, name: &str) -> String {
    TokenKey::new(TokenKind::Business, BUSINESS_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Business,
        uid,
        name: name.into(),
        app: "web".into(),
        exp: gru::clock::unix_ms() / 1000 + 600,
        groups: None,
        spears: None,
    })
}

/// A spear token signed with the cluster's secret, for `spears`, expiring at `exp`.
pub fn spear_token(uid: u64, spears: Vec<u64>, exp: u64) -> String {
    TokenKey::new(TokenKind::Spear, SPEAR_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Spear,
        uid,
        name: "test".into(),
        app: "web".into(),
        exp,
        groups: None,
        spears: Some(spears),
    })
}

/// `GET /ticket` on `node` for a user; returns `(spear host:port, token2)`.
pub async fn ticket(cluster: &TestCluster, node: u64, uid: u64, name: &str) -> (String, String) {
    ticket_with(cluster, node, uid, name, &token1(uid, name)).await
}

/// `GET /ticket` with a given token1.
pub async fn ticket_with(
    cluster: &TestCluster,
    node: u64,
    uid: u64,
    name: &str,
    token1: &str,
) -> (String, String) {
    let url = format!(
        "http://{}/ticket?userId={uid}&userName={name}&appType=web&token1={token1}",
        cluster.http_addr(node),
    );
    let body: Value = cluster
        .wait_for("a ticket", Duration::from_secs(20), || async {
            let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (v["success"] == true).then_some(v)
        })
        .await;
    let addr = body["data"]["addr"]
        .as_str()
        .expect("addr")
        .trim_start_matches("http://")
        .to_string();
    (
        addr,
        body["data"]["token"].as_str().expect("token").to_string(),
    )
}

/// A client that went through ticket and Gru's `auth` event.
pub async fn authed(cluster: &TestCluster, ticket_node: u64, uid: u64, name: &str) -> SioClient {
    let (addr, token2) = ticket(cluster, ticket_node, uid, name).await;
    let client = SioClient::connect(&addr, None).await.expect("connect");
    let reply = client
        .call(
            "auth",
            &json!({"id": uid, "name": name, "appType": "web", "token2": token2})
                .to_string()
                .into(),
        )
        .await
        .expect("auth ack");
    assert_eq!(reply["success"], true, "auth: {reply}");
    client
}

/// `tests/e2e`, with its packages installed from the lockfile first when they are missing (a
/// fresh checkout, or one from before a package was added; `.ci/run` installs them).
pub fn e2e_dir() -> std::path::PathBuf {
    use std::process::Command;
    let e2e = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let wanted = ["sio2", "sio4", "playwright-core"];
    if !wanted
        .iter()
        .all(|p| e2e.join("node_modules").join(p).exists())
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&e2e)
            .status()
            .expect("npm is needed for the end-to-end tests");
        assert!(status.success(), "npm ci in tests/e2e failed");
    }
    e2e
}

/// Runs Node's test runner in `tests/e2e` on `files` (all of them when empty) against the
/// built `gru` (`GRU_BIN`), with `env` added, installing the official clients from the lockfile
/// first on a fresh checkout (`.ci/run` installs them). Fails unless every test passed and
/// some ran; returns the runner's output.
pub fn node_tests(files: &[&str], env: &[(&str, String)]) -> String {
    use std::process::Command;
    let e2e = e2e_dir();
    // A test that hangs fails after this long instead of holding the run until nextest's
    // deadline, which kills it without its output.
    let out = Command::new("node")
        .arg("--test")
        .arg("--test-timeout=180000")
        .args(files)
        .current_dir(&e2e)
        .env("GRU_BIN", env!("CARGO_BIN_EXE_gru"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("node is needed for the end-to-end tests");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed");
    assert!(stdout.contains("# fail 0"), "some end-to-end test failed");
    assert!(!stdout.contains("# pass 0"), "no end-to-end test ran");
    stdout
}
