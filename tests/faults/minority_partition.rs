//! `minority_partition`: spear 5 is cut off from Redis and from the cores (both ways) while
//! clients on both spears exchange messages. It stops acknowledging what it cannot deliver (a
//! message it has no id for is refused, or gets no answer when the connection closes first);
//! once a whole lease passes without a renewal while gossip shows the cores' leader live, it is
//! fenced and tells its clients to reconnect through ticket, which places them on spear 4,
//! where they resume; after the heal it registers again and takes clients, and the delivery
//! checker is clean throughout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::scenario::{through_ticket, two_spears, wait_spears, Crowd, SPEARS};
use gru_testkit::ports::free_port;
use gru_testkit::proxy::FaultProxy;
use gru_testkit::tokens::spear_token;
use gru_testkit::ClusterOptions;

const CLIENTS: u64 = 40;
const CUT: u64 = 5;
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition() {
    // Spear 5 reaches Redis through a proxy of its own, so that the test can cut it alone.
    let mut redis_proxy = None;
    let options = ClusterOptions {
        proxies: true,
        ..ClusterOptions::default()
    };
    let cluster = two_spears(options, |cluster| {
        let redis = cluster.redis().expect("the cluster's Redis").port();
        let proxy = FaultProxy::start(
            SocketAddr::new(LOCAL, free_port()),
            SocketAddr::new(LOCAL, redis),
        );
        cluster.set_node_env(CUT, "GRU_REDIS__URL", &format!("redis://{}", proxy.addr()));
        redis_proxy = Some(proxy);
    })
    .await;
    let redis_proxy = redis_proxy.expect("the proxy");
    let mut crowd = Crowd::on_two_spears(&cluster, CLIENTS, 4000).await;
    crowd.start_traffic(2);
    crowd.wait_acked(100).await;

    cluster.partition(CUT);
    redis_proxy.block(LOCAL);
    let cut = Instant::now();
    // What it cannot deliver, it does not acknowledge.
    let on_cut: Vec<usize> = (0..crowd.clients.len())
        .filter(|i| SPEARS[((*i as u64 + 1) % 2) as usize] == CUT)
        .collect();
    let conn = crowd.clients[on_cut[0]]
        .lock()
        .await
        .conn()
        .expect("online");
    let payload =
        serde_json::json!({"type": 1, "target": {"id": 4001, "type": 1}, "content": "cut"});
    // A message it cannot get an id for is never acknowledged: its id request waits for a
    // leader it cannot reach for `idgen.wait_ms` and is refused (1001, "retry later"), or, if
    // its lease lapses first, the spear closes the connection and tells the client to go
    // through ticket again. The wait for the answer outlasts both.
    let answer = conn
        .call_within(
            "msg",
            &serde_json::Value::String(payload.to_string()),
            Duration::from_secs(20),
        )
        .await;
    match answer {
        Ok(ack) => {
            assert_eq!(
                ack["success"], false,
                "the cut-off spear acknowledged a message it has no id for: {ack}"
            );
            assert_eq!(ack["errorCode"], 1001, "{ack}");
        }
        Err(e) => assert!(
            !conn.is_open(),
            "no answer, but the cut-off spear kept the connection open: {e}"
        ),
    }
    crowd.checker.lock().expect("checker").refused(None);
    drop(conn);

    // Its clients are told to leave once its lease is gone, and go back through ticket.
    let outages: Vec<Duration> = futures_util::future::join_all(on_cut.iter().map(|i| {
        let (cluster, clients, checker) = (&cluster, &crowd.clients, &crowd.checker);
        async move {
            cluster
                .wait_for(
                    &format!("user {} to be told to leave", i + 1),
                    Duration::from_secs(20),
                    || async {
                        let open = clients[*i].lock().await.conn().is_some_and(|c| c.is_open());
                        (!open).then_some(())
                    },
                )
                .await;
            let ticket_node = [1, 2, 3][*i % 3];
            through_ticket(
                cluster,
                &clients[*i],
                (ticket_node, &SPEARS, Some(CUT)),
                checker,
                Duration::from_secs(30),
            )
            .await;
            cut.elapsed()
        }
    }))
    .await;
    let longest = outages.iter().max().copied().unwrap_or_default();
    // Traffic with every client on spear 4.
    crowd.wait_acked(50).await;

    // Healed: it registers again, takes clients, and they resume there.
    redis_proxy.unblock(LOCAL);
    cluster.heal(CUT);
    wait_spears(&cluster, 2).await;
    let healed = Instant::now();
    let exp = gru::clock::unix_ms() / 1000 + 600;
    let back = cluster.sio_addr(CUT);
    for i in on_cut.iter().take(5) {
        let mut c = crowd.clients[*i].lock().await;
        let uid = c.uid;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match c
                .connect(
                    CUT,
                    &back,
                    &spear_token(uid, SPEARS.to_vec(), exp),
                    &crowd.checker,
                )
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "user {uid} back on spear {CUT}: {e}"
                    );
                    // Pace of the retries (a connect needs the client itself: no closure).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    let back_in = healed.elapsed();
    // Traffic after the heal, on both spears.
    crowd.wait_acked(100).await;
    let acked = crowd.stop_traffic().await.len();
    let report = crowd.checker.lock().expect("checker").verify();
    eprintln!(
        "minority_partition: {} clients left spear {CUT}, the last {longest:?} after the cut; \
         5 were back on it {back_in:?} after it registered again; {acked} acked\n{report}",
        on_cut.len(),
    );
    assert!(acked > 100, "too little traffic: {acked}");
    assert!(
        report.is_clean(),
        "{report}\n{}",
        crowd.checker.lock().expect("checker").stories(&report)
    );
}
