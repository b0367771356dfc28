//! `metrics_scrape`: three cores (two of them ticket nodes) and two spears on the Redis relay,
//! clients placed through ticket on both spears, group messages from each spear; then every
//! node's `/metrics`, scraped on its admin listener with a read-only admin key (as Prometheus
//! holds), is parsed strictly and must show what the cluster did; that key takes no ids and
//! drains no spear, no key gets 401, and the public port has no `/metrics`. And
//! `metrics_disabled_answers_404`: with `[metrics] enabled = false` there is no `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::exposition::{self, Exposition};
use gru_testkit::sio::SioClient;
use gru_testkit::tickets::ticket;
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster, READ_KEY};

const CORES: [u64; 3] = [1, 2, 3];
const SPEARS: [u64; 2] = [4, 5];
const GROUP: u64 = 10;
const WAIT: Duration = Duration::from_secs(5);

/// `GET /metrics` on `node`'s admin surface with the read-only key Prometheus would hold,
/// parsed; panics on a bad answer or a malformed exposition.
async fn scrape(cluster: &TestCluster, node: u64) -> Exposition {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/metrics", cluster.admin_addr(node)))
        .bearer_auth(READ_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("node {node} does not answer /metrics: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "node {node}: /metrics");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "node {node}: content type {content_type:?}"
    );
    let text = resp.text().await.expect("a body");
    exposition::parse(&text).unwrap_or_else(|e| panic!("node {node}: {e}\n{text}"))
}

fn must(e: &Exposition, node: u64, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.get(name, labels)
        .unwrap_or_else(|| panic!("node {node} has no {name}{labels:?}: {:?}", e.samples))
}

/// A client of `uid` through ticket node `ticket_node` and Gru's `auth`: the spear the ticket
/// placed it on, and the client.
async fn through_ticket(cluster: &TestCluster, ticket_node: u64, uid: u64) -> (u64, SioClient) {
    let (addr, token2) = ticket(cluster, ticket_node, uid, "user").await;
    let spear = SPEARS
        .into_iter()
        .find(|s| cluster.sio_addr(*s) == addr)
        .unwrap_or_else(|| panic!("{addr} is no spear's"));
    let client = SioClient::connect(&addr, None).await.expect("connect");
    let reply = client
        .call(
            "auth",
            // Gru's clients send the payload as a JSON string.
            &json!({"id": uid, "name": "user", "appType": "web", "token2": token2})
                .to_string()
                .into(),
        )
        .await
        .expect("auth ack");
    assert_eq!(reply["success"], true, "auth: {reply}");
    (spear, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape() {
    // Each surface on its own listener, as a deployment has them.
    let options = ClusterOptions {
        separate_surfaces: true,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat"])
        .node(2, &["core", "ticket"])
        .cores(&[3])
        .spears(&SPEARS)
        .options(options)
        .launch()
        .await;

    // Clients through ticket: which ticket node issued how many, and where each landed.
    let mut issued: BTreeMap<u64, u64> = BTreeMap::new();
    let mut on_spear: BTreeMap<u64, Vec<SioClient>> = BTreeMap::new();
    for (uid, ticket_node) in [(101, 1), (102, 2), (103, 1), (104, 2), (105, 1)] {
        let (spear, client) = through_ticket(&cluster, ticket_node, uid).await;
        *issued.entry(ticket_node).or_default() += 1;
        on_spear.entry(spear).or_default().push(client);
    }
    // Placement is by hash: a spear that got nobody gets a client with a spear token of its own.
    for spear in SPEARS {
        if !on_spear.contains_key(&spear) {
            let token = spear_token(200 + spear, vec![spear], gru::clock::unix_ms() / 1000 + 600);
            let client =
                SioClient::connect(&cluster.sio_addr(spear), Some(json!({"token": token})))
                    .await
                    .expect("connect with a spear token");
            on_spear.entry(spear).or_default().push(client);
        }
    }
    // A refused ticket: counted under its own outcome, not as issued.
    let bad: Value = reqwest::get(format!(
        "http://{}/ticket?userId=1&userName=x&appType=web&token1=not-a-token",
        cluster.http_addr(2)
    ))
    .await
    .expect("ticket answers")
    .json()
    .await
    .expect("JSON");
    assert_eq!(bad["errorCode"], 711, "{bad}");

    // Everyone in one group; a message from each spear reaches the other through Redis.
    for clients in on_spear.values() {
        for client in clients {
            client.join(GROUP).await;
        }
    }
    for spear in SPEARS {
        let sender = &on_spear[&spear][0];
        let ack = sender
            .call(
                "msg",
                &json!({"type": 1, "target": {"id": GROUP}, "content": format!("from {spear}")}),
            )
            .await
            .expect("msg ack");
        assert_eq!(ack["success"], true, "{ack}");
    }
    for clients in on_spear.values_mut() {
        for client in clients {
            for _ in SPEARS {
                client.next_event("msg", WAIT).await.expect("both messages");
            }
        }
    }

    // Raft: one leader, one term, a log applied everywhere. Read until the cores agree (an
    // election between two scrapes would split them), then check.
    let cores = cluster
        .wait_for(
            "the cores agree on term and leader",
            Duration::from_secs(15),
            || async {
                let mut all = BTreeMap::new();
                for id in CORES {
                    all.insert(id, scrape(&cluster, id).await);
                }
                let terms: Vec<_> = all.values().map(|e| e.value("gru_raft_term")).collect();
                let leaders: Vec<_> = all
                    .values()
                    .map(|e| e.value("gru_raft_leader_id"))
                    .collect();
                (terms.iter().all(|t| *t == terms[0]) && leaders.iter().all(|l| *l == leaders[0]))
                    .then_some(all)
            },
        )
        .await;
    let leaders: Vec<u64> = CORES
        .into_iter()
        .filter(|id| must(&cores[id], *id, "gru_raft_is_leader", &[]) == 1.0)
        .collect();
    assert_eq!(
        leaders.len(),
        1,
        "exactly one core says it leads: {leaders:?}"
    );
    for (id, e) in &cores {
        let term = must(e, *id, "gru_raft_term", &[]);
        assert!(term > 0.0, "node {id}: term {term}");
        assert_eq!(
            must(e, *id, "gru_raft_leader_id", &[]),
            leaders[0] as f64,
            "node {id} names the leader"
        );
        let applied = must(e, *id, "gru_raft_applied_index", &[]);
        let committed = must(e, *id, "gru_raft_commit_index", &[]);
        let last = must(e, *id, "gru_raft_last_log_index", &[]);
        assert!(applied > 0.0, "node {id}: applied {applied}");
        assert!(
            applied <= committed && committed <= last,
            "node {id}: {applied} {committed} {last}"
        );
    }

    // Tickets: exactly the requests made, each under its outcome.
    for id in [1, 2] {
        let e = &cores[&id];
        assert_eq!(
            must(e, id, "gru_ticket_requests_total", &[("outcome", "issued")]),
            issued[&id] as f64,
            "node {id}: tickets issued"
        );
        let bad_tokens = if id == 2 { 1.0 } else { 0.0 };
        assert_eq!(
            must(
                e,
                id,
                "gru_ticket_requests_total",
                &[("outcome", "bad_token")]
            ),
            bad_tokens,
            "node {id}: bad tokens"
        );
    }
    assert!(
        cores[&3].all("gru_ticket_requests_total").is_empty(),
        "node 3 is no ticket node"
    );

    // Ids: strict mode, so the leader issued every message's id and the others none.
    for (id, e) in &cores {
        let leads = *id == leaders[0];
        let issuing = must(e, *id, "gru_idgen_issuing", &[("mode", "strict")]);
        let issued = must(e, *id, "gru_idgen_ids_issued_total", &[]);
        let changes = must(e, *id, "gru_idgen_leader_changes_total", &[]);
        if leads {
            assert_eq!(issuing, 1.0, "the leader issues");
            assert!(issued >= 2.0, "the leader issued {issued} ids");
            assert!(
                changes >= 1.0,
                "the leader became the issuer {changes} times"
            );
            assert!(e
                .value("gru_idgen_issuer_since_timestamp_seconds")
                .is_some_and(|t| t > 1.0e9));
        } else {
            assert_eq!((issuing, issued), (0.0, 0.0), "node {id} does not issue");
        }
    }

    // Spears: connections, users and the group as placed; the relay up and used both ways.
    let redis = [("kind", "redis")];
    for spear in SPEARS {
        let e = scrape(&cluster, spear).await;
        let here = on_spear[&spear].len() as f64;
        assert_eq!(
            must(&e, spear, "gru_connections", &[]),
            here,
            "spear {spear}"
        );
        assert_eq!(must(&e, spear, "gru_users", &[]), here, "spear {spear}");
        assert_eq!(must(&e, spear, "gru_groups", &[]), 1.0, "spear {spear}");
        assert_eq!(must(&e, spear, "gru_relay_connected", &redis), 1.0);
        assert_eq!(must(&e, spear, "gru_redis_connected", &[]), 1.0);
        let published = must(&e, spear, "gru_relay_published_total", &redis);
        let errors = must(&e, spear, "gru_relay_publish_errors_total", &redis);
        assert!(published >= 1.0, "spear {spear}: published {published}");
        assert_eq!(errors, 0.0, "spear {spear}");
        // The other spear's message (and this spear's own echo).
        let received = must(&e, spear, "gru_relay_received_total", &redis);
        assert!(received >= 1.0, "spear {spear}: received {received}");
        // One message sent here; both delivered here, to the group's room, once each.
        assert_eq!(
            must(&e, spear, "gru_messages_in_total", &redis),
            1.0,
            "spear {spear}"
        );
        assert_eq!(
            must(&e, spear, "gru_messages_out_total", &redis),
            2.0,
            "spear {spear}"
        );
        assert_eq!(
            must(&e, spear, "gru_idgen_ids_issued_total", &[]),
            0.0,
            "spear {spear} asks the leader for ids"
        );
        // Every publish was timed.
        let timed = must(&e, spear, "gru_relay_publish_seconds_count", &redis);
        assert_eq!(timed, published + errors, "spear {spear}");
        let inf = [("kind", "redis"), ("le", "+Inf")];
        assert_eq!(
            must(&e, spear, "gru_relay_publish_seconds_bucket", &inf),
            timed
        );
        assert!(must(&e, spear, "gru_relay_publish_seconds_sum", &redis) > 0.0);
        // Buckets are cumulative: never fewer at a higher bound.
        let mut buckets: Vec<(f64, f64)> = e
            .all("gru_relay_publish_seconds_bucket")
            .into_iter()
            .map(|(labels, n)| {
                let le = labels.get("le").map(String::as_str).unwrap_or_default();
                (le.parse::<f64>().unwrap_or(f64::NAN), n)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 16, "spear {spear}: {buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "spear {spear}: buckets not cumulative: {buckets:?}"
        );
        assert_eq!(
            e.get(
                "gru_node_info",
                &[("node", &spear.to_string()), ("roles", "spear")]
            ),
            Some(1.0)
        );
        assert!(
            e.all("gru_raft_term").is_empty(),
            "spear {spear} is no core"
        );
    }
    // Gossip drops nothing between members that share the key.
    for id in CORES {
        assert_eq!(
            cores[&id].get("gru_gossip_dropped_total", &[("reason", "bad_signature")]),
            Some(0.0),
            "node {id}"
        );
    }
    // The stat node reads presence through Redis: its link is shown too.
    assert_eq!(must(&cores[&1], 1, "gru_redis_connected", &[]), 1.0);
    assert_eq!(
        cores[&1].get(
            "gru_node_info",
            &[("node", "1"), ("roles", "core,ticket,stat")]
        ),
        Some(1.0)
    );

    // The human log format names the node on every line, openraft's included.
    for id in CORES.into_iter().chain(SPEARS) {
        let log = cluster.log(id);
        let prefix = format!("node={id} ");
        for line in log.lines().filter(|l| !l.starts_with("=== harness")) {
            assert!(line.starts_with(&prefix), "node {id}: {line:?}");
        }
    }

    // The read-only key reads and does nothing else; without a key nothing; and the public
    // port has no /metrics at all.
    let http = reqwest::Client::new();
    let status = |resp: reqwest::Response| resp.status().as_u16();
    for id in CORES.into_iter().chain(SPEARS) {
        let admin = cluster.admin_addr(id);
        let bare = http.get(format!("http://{admin}/metrics")).send().await;
        assert_eq!(bare.map(status).ok(), Some(401), "node {id}: no key");
        let public = http
            .get(format!("http://{}/metrics", cluster.http_addr(id)))
            .bearer_auth(READ_KEY)
            .send()
            .await;
        assert_eq!(public.map(status).ok(), Some(404), "node {id}: public port");
        let ids = http
            .get(format!("http://{admin}/api/v1/ids?count=1"))
            .bearer_auth(READ_KEY)
            .send()
            .await;
        assert_eq!(
            ids.map(status).ok(),
            Some(403),
            "node {id}: ids with a read key"
        );
    }
    for spear in SPEARS {
        let drain = http
            .post(format!(
                "http://{}/api/v1/spear/drain",
                cluster.admin_addr(spear)
            ))
            .bearer_auth(READ_KEY)
            .json(&json!({"action": "start"}))
            .send()
            .await;
        assert_eq!(drain.map(status).ok(), Some(403), "spear {spear}: drain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_disabled_answers_404() {
    let options = ClusterOptions {
        extra_toml: "[metrics]\nenabled = false\n".into(),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat", "spear"])
        .options(options)
        .launch()
        .await;
    let resp = cluster.get(1, "/metrics").await.expect("the node answers");
    assert_eq!(resp.status().as_u16(), 404);
    let health = cluster.get(1, "/healthz").await.expect("the node answers");
    assert_eq!(health.status().as_u16(), 200);
}
