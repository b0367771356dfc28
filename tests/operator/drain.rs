//! `drain_spear`: 500 clients on one spear; `gru drain` empties it in waves, every client is
//! told to reconnect through ticket and ends up on the other spear, ticket places nobody on the
//! drained spear, and `gru drain --stop` lets it take users again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use gru_testkit::sio::SioClient;
use gru_testkit::tickets::ticket;
use gru_testkit::tokens::spear_token;
use gru_testkit::TestCluster;

const CLIENTS: u64 = 500;
const WAVE: u64 = 100;
const EVERY_MS: u64 = 500;
/// The spear drained.
const DRAINED: u64 = 2;
/// The spear that takes its clients.
const OTHER: u64 = 3;

/// What became of one client: when it was told to leave, and where it is now.
struct Moved {
    told_at: Instant,
    notice: Value,
    now_on: String,
    client: SioClient,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_spear() {
    let cluster = TestCluster::builder()
        .node(1, &["core", "ticket", "stat"])
        .spears(&[DRAINED, OTHER])
        // Every client asks ticket again within a wave, all from 127.0.0.1.
        .extra_toml("[ticket]\nrequests_per_ip_per_sec = 5000\nburst = 5000\n")
        .launch()
        .await;
    let cluster = Arc::new(cluster);

    // 500 users on the spear to drain (their tokens name it), each in one of ten groups.
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let mut clients = Vec::new();
    for chunk in (1..=CLIENTS).collect::<Vec<_>>().chunks(50) {
        let connects = chunk.iter().map(|&uid| {
            let addr = cluster.sio_addr(DRAINED);
            async move {
                let token = spear_token(uid, vec![DRAINED], exp);
                let c = SioClient::connect(&addr, Some(json!({"token": token})))
                    .await
                    .expect("connect to the spear to drain");
                c.join(uid % 10).await;
                (uid, c)
            }
        });
        clients.extend(futures_util::future::join_all(connects).await);
    }
    let counts = spear_json(&cluster, DRAINED).await;
    assert_eq!(counts["connections"], CLIENTS, "{counts}");
    assert_eq!(counts["draining"], false, "{counts}");

    // Each client, as an application would: on `server_shutdown`, back to ticket, and on to
    // the spear it names.
    let movers: Vec<_> = clients
        .into_iter()
        .map(|(uid, mut c)| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let notice = c
                    .next_event("server_shutdown", Duration::from_secs(60))
                    .await
                    .unwrap_or_else(|| panic!("user {uid} was never told to leave"));
                let told_at = Instant::now();
                let (addr, token2) = ticket(&cluster, 1, uid, "drained").await;
                let client = SioClient::connect(&addr, None).await.expect("reconnect");
                let reply = client
                    .call(
                        "auth",
                        &json!({"id": uid, "name": "drained", "appType": "web", "token2": token2}),
                    )
                    .await
                    .expect("auth ack");
                assert_eq!(reply["success"], true, "user {uid}: {reply}");
                Moved {
                    told_at,
                    notice,
                    now_on: addr,
                    client,
                }
            })
        })
        .collect();

    let (wave, every) = (WAVE.to_string(), EVERY_MS.to_string());
    let (ok, out, err) = gru_drain(
        &cluster,
        &[
            "--wave",
            &wave,
            "--every-ms",
            &every,
            "--timeout-secs",
            "120",
        ],
    )
    .await;
    assert!(ok, "gru drain failed:\n{out}\n{err}");
    println!("{out}");
    assert!(out.contains("connections left"), "progress shown:\n{out}");
    assert!(
        out.contains(&format!("spear {DRAINED} is drained")),
        "{out}"
    );
    // Progress went down wave by wave, not from 500 to 0 at once.
    let steps = out
        .lines()
        .filter(|l| l.contains("connections left"))
        .count();
    assert!(steps >= 3, "progress in steps:\n{out}");

    let mut moved = Vec::new();
    for mover in movers {
        moved.push(mover.await.expect("a client task"));
    }
    let other = cluster.sio_addr(OTHER);
    for m in &moved {
        assert_eq!(m.notice["reconnect"], "ticket", "{}", m.notice);
        assert_eq!(m.now_on, other, "every client ends up on the other spear");
        assert!(m.client.is_open());
    }
    // Waves: the notices reached the clients spread over the drain, not all at once (the
    // spear's own progress above went down wave by wave). On a loaded 2-core machine one
    // wave's notices take a few hundred ms to be read by 500 clients, so bursts can merge;
    // the span cannot shrink below (waves - 1) pauses of at least half the interval.
    let mut times: Vec<Instant> = moved.iter().map(|m| m.told_at).collect();
    times.sort();
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    let least = Duration::from_millis((CLIENTS / WAVE - 1) * EVERY_MS / 2);
    assert!(
        span >= least,
        "notices within {span:?}, less than {least:?}: not in waves"
    );

    let drained = spear_json(&cluster, DRAINED).await;
    assert_eq!(
        (&drained["connections"], &drained["draining"]),
        (&json!(0), &json!(true)),
        "{drained}"
    );
    let took = spear_json(&cluster, OTHER).await;
    assert_eq!(took["connections"], CLIENTS, "{took}");
    // New users all go to the other spear while it drains …
    for uid in 1001..1021 {
        let (addr, _) = ticket(&cluster, 1, uid, "new").await;
        assert_eq!(addr, other, "ticket placed user {uid} on the drained spear");
    }
    // … and a client that comes straight to it is refused.
    let token = spear_token(2000, vec![DRAINED], exp);
    let refused = SioClient::connect(&cluster.sio_addr(DRAINED), Some(json!({"token": token})))
        .await
        .err();
    assert!(refused.is_some(), "a draining spear takes no connections");

    // `--stop`: it takes users again, and ticket places some there.
    let (ok, out, err) = gru_drain(&cluster, &["--stop"]).await;
    assert!(ok, "gru drain --stop failed:\n{out}\n{err}");
    let drained_addr = cluster.sio_addr(DRAINED);
    cluster
        .wait_for(
            "ticket places users on the spear again",
            Duration::from_secs(20),
            || async {
                for uid in 3000..3040 {
                    if ticket(&cluster, 1, uid, "back").await.0 == drained_addr {
                        return Some(());
                    }
                }
                None
            },
        )
        .await;
}

/// `gru drain --config <the cluster's> --node DRAINED` with `more` arguments.
async fn gru_drain(cluster: &TestCluster, more: &[&str]) -> (bool, String, String) {
    let config = cluster.config_path().to_string_lossy().into_owned();
    let node = DRAINED.to_string();
    let mut args = vec!["drain", "--config", &config, "--node", &node];
    args.extend_from_slice(more);
    crate::run_gru(&args).await
}

/// `GET /api/v1/spear` of spear `id`.
async fn spear_json(cluster: &TestCluster, id: u64) -> Value {
    let resp = cluster
        .get(id, "/api/v1/spear")
        .await
        .expect("spear answers");
    resp.json().await.expect("JSON")
}
