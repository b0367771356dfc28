//! `idempotency_store_bound`: what one API key may keep of idempotent answers is bounded, in
//! keys and in bytes, in both places they are kept (Redis with two spears, the spear's memory
//! with the local relay). Past the budget a new key is refused with 429
//! `idempotency_store_full` — nothing remembered is forgotten early, so every retry still gets
//! its first answer — and another API key is unaffected. A replay counts against the key's
//! message rate like the request it replays.

use serde_json::{json, Value};

use gru_testkit::{ClusterOptions, TestCluster, BUSINESS_SECRET, SPEAR_SECRET};

const SMALL: &str = "small-server-api-key-0000000000000001";
const LARGE: &str = "large-server-api-key-0000000000000002";
const MAX_KEYS: usize = 20;

/// Two keys, each allowed `MAX_KEYS` remembered answers and 16 KiB of them, 100 messages a
/// second after a burst of 500.
fn options() -> ClusterOptions {
    let mut auth =
        format!("business_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n");
    for (name, secret) in [("small", SMALL), ("large", LARGE)] {
        auth.push_str(&format!(
            "[[auth.api_keys]]\nname = \"{name}\"\nsecret = \"{secret}\"\nscopes = [\"publish\"]\n"
        ));
    }
    let env = [
        ("GRU_SERVER_API__IDEMPOTENCY_MAX_KEYS", MAX_KEYS.to_string()),
        ("GRU_SERVER_API__IDEMPOTENCY_MAX_BYTES", "16384".to_string()),
        ("GRU_SERVER_API__MESSAGES_PER_SEC", "500".to_string()),
        ("GRU_SERVER_API__BURST", "500".to_string()),
    ];
    ClusterOptions {
        auth_toml: Some(auth),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
        ..ClusterOptions::default()
    }
}

/// Node 1 (core, ticket) and spears 2 and 3 on the cluster's own Redis, with `options`.
async fn two_spears(options: ClusterOptions) -> TestCluster {
    TestCluster::builder()
        .node(1, &["core", "ticket"])
        .spears(&[2, 3])
        .options(options)
        .launch()
        .await
}

/// Publishes to `users` with `key` under `idempotency_key`: status, replayed?, answer.
async fn publish(
    cluster: &TestCluster,
    spear: u64,
    key: &str,
    idempotency_key: &str,
    users: &[u64],
) -> (u16, bool, Value) {
    let body = json!({"to": {"users": users}, "content": "x"}).to_string();
    let headers = [("idempotency-key", idempotency_key)];
    let (status, headers, answer) = cluster
        .post_json(spear, "/api/v1/publish", Some(key), &headers, body)
        .await;
    (status, headers.contains_key("idempotent-replayed"), answer)
}

/// The bound on `cluster`, its server API on `spears` (a request goes to each in turn).
async fn check(cluster: &TestCluster, spears: &[u64], backend: &str) {
    let on = |i: usize| spears[i % spears.len()];
    for i in 0..MAX_KEYS {
        let (status, _, answer) = publish(cluster, on(i), SMALL, &format!("k{i}"), &[1]).await;
        assert_eq!(status, 200, "{backend}: key {i}: {answer}");
    }
    let (status, _, answer) = publish(cluster, on(0), SMALL, "one-more", &[1]).await;
    assert_eq!(status, 429, "{backend}: past the key budget: {answer}");
    assert_eq!(
        answer["error"]["code"], "idempotency_store_full",
        "{answer}"
    );
    // Every remembered answer still answers its retry, on any spear.
    for i in [0, MAX_KEYS - 1] {
        let (status, replayed, answer) =
            publish(cluster, on(i + 1), SMALL, &format!("k{i}"), &[1]).await;
        assert_eq!(
            (status, replayed),
            (200, true),
            "{backend}: retry of k{i}: {answer}"
        );
    }
    // Bytes: one answer of 200 messages fills the other key's 16 KiB; it is stored all the
    // same (its request ran), and the next new key is refused.
    let many: Vec<u64> = (100..300).collect();
    let (status, _, answer) = publish(cluster, on(0), LARGE, "big", &many).await;
    assert_eq!(status, 200, "{backend}: {answer}");
    let (status, replayed, _) = publish(cluster, on(1), LARGE, "big", &many).await;
    assert_eq!(
        (status, replayed),
        (200, true),
        "{backend}: the large answer was kept"
    );
    let (status, _, answer) = publish(cluster, on(0), LARGE, "after-big", &[1]).await;
    assert_eq!(status, 429, "{backend}: past the byte budget: {answer}");
    assert_eq!(
        answer["error"]["code"], "idempotency_store_full",
        "{answer}"
    );
    // Replays are charged: 200 messages a replay against 500 a second (after the burst) soon
    // answer 429 rate_limited, with the answer unchanged for the replays that pass.
    let mut limited = 0;
    for _ in 0..10 {
        let (status, _, answer) = publish(cluster, on(0), LARGE, "big", &many).await;
        match status {
            200 => {}
            429 => {
                assert_eq!(answer["error"]["code"], "rate_limited", "{answer}");
                limited += 1;
            }
            other => panic!("{backend}: a replay answered {other}: {answer}"),
        }
    }
    assert!(
        limited > 0,
        "{backend}: ten replays of 200 messages were never rate limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_store_bound() {
    // In the spear's memory (the local relay).
    let local = TestCluster::single_spear(gru_testkit::gru(), options()).await;
    check(&local, &[1], "memory").await;
    drop(local);

    // In Redis, shared by two spears.
    let mut cluster = two_spears(options()).await;
    check(&cluster, &[2, 3], "redis").await;
    let redis = cluster.redis().expect("the cluster's Redis");
    let keys = redis
        .cmd(&["--scan", "--pattern", "*:idem:*"])
        .unwrap_or_default();
    let count = keys.lines().filter(|l| !l.trim().is_empty()).count();
    eprintln!("idempotency_store_bound: {count} idempotency keys in Redis");
    // The records (20 + 1 for one key, 1 for the other) and each key's index, sizes and total.
    assert!(
        count <= MAX_KEYS + 2 + 2 * 3,
        "{count} idempotency keys in Redis:\n{keys}"
    );
}
