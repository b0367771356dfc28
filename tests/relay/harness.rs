//! Steps shared by the relay scenarios: a cluster whose core nodes are also spears, clients
//! placed on a chosen spear, sends, and reads of presence and relay counters.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tokens::spear_token;
use gru_testkit::{ClusterOptions, TestCluster};

/// The node that serves the stat API.
pub const STAT: u64 = 1;

/// Three core nodes that are spears too (node 1 also serves stat), on a Redis of the
/// harness's or `options`' choosing; started, with a leader and both spears registered.
pub async fn spear_cluster(spears: &[u64], options: ClusterOptions) -> TestCluster {
    let mut cluster = TestCluster::builder().options(options);
    for id in 1..=3 {
        let mut roles = vec!["core"];
        if spears.contains(&id) {
            roles.push("spear");
        }
        if id == STAT {
            roles.push("stat");
        }
        cluster = cluster.node(id, &roles);
    }
    cluster
        // The scenarios send faster than a client may by default (50 msg/s).
        .env("GRU_SPEAR__MAX_MSGS_PER_SEC", "1000")
        .launch()
        .await
}

/// A client of user `uid` connected to spear `spear` (modern handshake token).
pub async fn connect(cluster: &TestCluster, spear: u64, uid: u64) -> SioClient {
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let token = spear_token(uid, vec![1, 2, 3], exp);
    let addr = format!("127.0.0.1:{}", cluster.ports(spear).sio);
    SioClient::connect(&addr, Some(json!({"token": token})))
        .await
        .unwrap_or_else(|e| panic!("user {uid} on spear {spear}: {e}"))
}

/// Sends a `msg` the Gru way (a JSON string) and returns the ack.
pub async fn send(c: &SioClient, kind: u8, target: u64, content: &str) -> Value {
    let payload = json!({"type": kind, "target": {"id": target, "type": 1}, "content": content});
    c.call("msg", &Value::String(payload.to_string()))
        .await
        .expect("msg ack")
}

/// Every `msg` event that arrives until none came for `quiet`.
pub async fn drain(c: &mut SioClient, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(m) = c.next_event("msg", quiet).await {
        out.push(m);
    }
    out
}

/// The contents of `msgs`, counted.
pub fn counted(msgs: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in msgs {
        *out.entry(m["content"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    out
}

/// `GET path` on `node` as JSON, with its status.
pub async fn get_json(cluster: &TestCluster, node: u64, path: &str) -> Option<(u16, Value)> {
    let resp = cluster.get(node, path).await?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.ok()?))
}

/// Gru's `GET /getGroupStat` on the stat node, when it answers 200.
pub async fn group_stat(cluster: &TestCluster, gid: u64) -> Option<Vec<u64>> {
    let (status, body) = get_json(cluster, STAT, &format!("/getGroupStat?groupId={gid}")).await?;
    if status != 200 {
        return None;
    }
    assert_eq!(body["groupId"], gid, "{body}");
    serde_json::from_value(body["userIds"].clone()).ok()
}

/// Waits until `/getGroupStat` lists exactly `expected`.
pub async fn wait_group_stat(
    cluster: &TestCluster,
    gid: u64,
    expected: &[u64],
    deadline: Duration,
) {
    cluster
        .wait_for(
            &format!("group {gid} online = {expected:?}"),
            deadline,
            || async {
                let got = group_stat(cluster, gid).await?;
                (got == expected).then_some(())
            },
        )
        .await;
}

/// The `online` event's user ids, as seen by `c`.
pub async fn online_event(c: &SioClient, gid: u64) -> Vec<u64> {
    let reply = c
        .call("online", &Value::String(gid.to_string()))
        .await
        .expect("online ack");
    assert_eq!(reply["success"], true, "online: {reply}");
    serde_json::from_value(reply["data"]["userIds"].clone()).expect("userIds")
}

/// Spear `node`'s relay counters (`GET /api/v1/relay`).
pub async fn relay_report(cluster: &TestCluster, node: u64) -> Value {
    let (status, body) = get_json(cluster, node, "/api/v1/relay")
        .await
        .expect("relay report");
    assert_eq!(status, 200, "{body}");
    body
}

/// One counter of [`relay_report`].
pub async fn relay_counter(cluster: &TestCluster, node: u64, name: &str) -> u64 {
    relay_report(cluster, node)
        .await
        .get(name)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// The messages one sender had acknowledged as relayed, which must all be delivered once.
#[derive(Default)]
pub struct Relayed {
    seq: u64,
    /// Ids of the messages acknowledged with success.
    pub ids: BTreeSet<u64>,
}

impl Relayed {
    /// Sends the next numbered message from `c` (`kind` 0 to a user, 1 to a group) and
    /// returns the answer; a success is remembered.
    pub async fn send(&mut self, c: &SioClient, kind: u8, target: u64) -> Value {
        self.seq += 1;
        let ack = send(c, kind, target, &format!("m{}", self.seq)).await;
        if ack["success"] == true {
            self.ids.insert(ack["data"]["id"].as_u64().expect("id"));
        }
        ack
    }

    /// After the transport was killed: sends (`kind`, `target`) until the relay refuses one
    /// for certain (delivered locally only, or stored in the history only), within
    /// `deadline`. Every refusal must be 1001 naming
    /// `transport`; those before it may be `uncertain` (an append in flight when the
    /// connection broke, or the first command on a connection that is already dead).
    pub async fn until_refused(
        &mut self,
        c: &SioClient,
        (kind, target): (u8, u64),
        transport: &str,
        deadline: Duration,
    ) {
        let down = std::time::Instant::now();
        loop {
            let ack = self.send(c, kind, target).await;
            if ack["success"] != true {
                assert_eq!(ack["errorCode"], 1001, "{ack}");
                let msg = ack["msg"].as_str().unwrap_or_default();
                assert!(
                    msg.contains("unavailable") && msg.contains(transport),
                    "the sender is told which transport failed: {ack}"
                );
                // Refused for certain: delivered here only (no history), or stored in the
                // history for the other spears to read when the relay could not carry it.
                if ack["data"]["localOnly"] == true || ack["data"]["stored"] == true {
                    assert!(ack["data"].get("uncertain").is_none(), "{ack}");
                    return;
                }
                assert_eq!(
                    ack["data"]["uncertain"], true,
                    "neither local nor uncertain: {ack}"
                );
            }
            assert!(
                down.elapsed() < deadline,
                "no local-only refusal while {transport} is down"
            );
            // Pace of the sends within the deadline (each one is recorded: no closure).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends until the relay takes a message again (every refusal must be 1001), within
    /// `deadline`; returns how long it took.
    pub async fn until_taken(
        &mut self,
        c: &SioClient,
        target: u64,
        deadline: Duration,
    ) -> Duration {
        let back = std::time::Instant::now();
        loop {
            let ack = self.send(c, 0, target).await;
            if ack["success"] == true {
                return back.elapsed();
            }
            assert_eq!(ack["errorCode"], 1001, "{ack}");
            assert!(
                back.elapsed() < deadline,
                "the relay did not come back: {ack}"
            );
            // Pace of the sends within the deadline (each one is recorded: no closure).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads `receiver` until every acknowledged message arrived (within `deadline`), and
    /// checks none arrived twice.
    pub async fn delivered_once(&self, receiver: &mut SioClient, deadline: Duration) {
        let end = std::time::Instant::now() + deadline;
        let mut ids: Vec<u64> = Vec::new();
        loop {
            let got = drain(receiver, Duration::from_millis(800)).await;
            ids.extend(got.iter().filter_map(|m| m["id"].as_u64()));
            let seen: BTreeSet<u64> = ids.iter().copied().collect();
            if self.ids.is_subset(&seen) || std::time::Instant::now() > end {
                break;
            }
        }
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "no message delivered twice");
        let lost: Vec<&u64> = self.ids.difference(&unique).collect();
        assert!(lost.is_empty(), "acknowledged but not delivered: {lost:?}");
    }
}
