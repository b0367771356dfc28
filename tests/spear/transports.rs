//! `polling_transport`: the path every default socket.io client takes first — engine.io
//! long-polling over plain HTTP requests, v4 (socket.io-client 3/4) and v3 (socket.io-client
//! 2) — carries a whole Gru session: the namespace connect, `auth`, `join`, a message to
//! oneself and to the group, each answered on later polls of the same session. A page of
//! another origin may poll (CORS). Before the fix every poll after the opening one was
//! answered "Session ID unknown": each request met a fresh engine.io engine.

use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::{Eio, Polling};
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_transport() {
    let cluster = TestCluster::single_spear(gru_testkit::gru(), ClusterOptions::default()).await;
    let addr = cluster.sio_addr(1);
    let exp = gru::clock::unix_ms() / 1000 + 600;

    for (eio, uid) in [(Eio::V4, 3101), (Eio::V3, 3102)] {
        let (mut s, open) = Polling::open(&addr, eio, None)
            .await
            .unwrap_or_else(|e| panic!("{eio:?}: {e}"));
        assert_eq!(open["upgrades"], json!(["websocket"]), "{open}");
        let connected = s.connect(None).await.expect("namespace connect");
        assert!(connected.starts_with('0'), "{eio:?}: {connected}");

        let auth = json!({"id": uid, "name": "poller", "appType": "web",
            "token2": spear_token(uid, vec![1], exp)});
        let reply = s
            .call("auth", &Value::String(auth.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{eio:?} auth: {e}"));
        assert_eq!(reply["success"], true, "{eio:?}: {reply}");
        let joined = s
            .call("join", &json!({"groups": [31]}))
            .await
            .expect("join");
        assert_eq!(joined["success"], true, "{eio:?}: {joined}");

        for (kind, target) in [(0, uid), (1, 31)] {
            let content = format!("{eio:?} to {kind}:{target}");
            let msg = json!({"type": kind, "target": {"id": target}, "content": content});
            let ack = s
                .call("msg", &Value::String(msg.to_string()))
                .await
                .expect("msg ack");
            assert_eq!(ack["success"], true, "{eio:?}: {ack}");
            let got = s
                .event("msg", Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("{eio:?}: no msg back: {e}"));
            assert_eq!(got["content"], json!(content), "{got}");
            assert_eq!(got["id"], ack["data"]["id"], "{got}");
        }
    }

    // A page of another origin may long-poll: the answers carry CORS, and a preflight is
    // answered.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
    let resp = http
        .get(&url)
        .header("origin", "http://app.example")
        .send()
        .await
        .expect("open");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    let allowed = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(allowed("access-control-allow-origin"), "*");
    assert!(allowed("access-control-allow-methods").contains("POST"));
    assert_eq!(allowed("access-control-allow-headers"), "content-type");
}
