//! `spear_group_access`: with `auth.enforce_groups = true` a user may join only the groups its
//! token lists; anything else is refused with 1002 and the connection stays.

use gru::services::auth::{Claims, TokenKey, TokenKind};
use serde_json::json;

use gru_testkit::sio::SioClient;
use gru_testkit::tickets::ticket_with;
use gru_testkit::BUSINESS_SECRET;
use gru_testkit::{ClusterOptions, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spear_group_access() {
    let options = ClusterOptions {
        env: vec![("GRU_AUTH__ENFORCE_GROUPS".into(), "true".into())],
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::single_spear(gru_testkit::gru(), options).await;

    let token1 = TokenKey::new(TokenKind::Business, BUSINESS_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Business,
        uid: 77,
        name: "grace".into(),
        app: "web".into(),
        exp: gru::clock::unix_ms() / 1000 + 600,
        groups: Some(vec![10, 11]),
        spears: None,
    });
    let (addr, token2) = ticket_with(&cluster, 1, 77, "grace", &token1).await;

    let client = SioClient::connect(&addr, None).await.expect("connect");
    let auth = client
        .call(
            "auth",
            &json!({"id": 77, "name": "grace", "appType": "web", "token2": token2}),
        )
        .await
        .expect("auth");
    assert_eq!(auth["success"], true, "{auth}");
    let ok = client
        .call(
            "subscribe",
            &json!({"userId": 77, "subscribeGroups": [{"id": 10}, {"id": 11}]}),
        )
        .await
        .expect("subscribe");
    assert_eq!(ok["success"], true, "groups in the token: {ok}");
    let denied = client
        .call(
            "subscribe",
            &json!({"userId": 77, "subscribeGroups": [{"id": 10}, {"id": 12}]}),
        )
        .await
        .expect("subscribe");
    assert_eq!(
        denied["errorCode"], 1002,
        "a group outside the token: {denied}"
    );
    let denied = client
        .call("join", &json!({"groups": [99]}))
        .await
        .expect("join");
    assert_eq!(denied["errorCode"], 1002);
    assert!(
        client.is_open(),
        "a refused subscription keeps the connection"
    );
    let online = client.call("online", &json!(12)).await.expect("online");
    assert_eq!(
        online["data"]["userIds"],
        json!([]),
        "nothing of group 12 was joined"
    );
}
