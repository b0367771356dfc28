//! `a_stop_refuses_new_clients_and_cuts_stuck_ones`: while a spear stops, its socket.io port
//! refuses new connections instead of answering them "Invalid namespace", and a client that
//! does not read delays the stop by no more than the drain time.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::node::{client, sio, small_window_client, start, NODE};
use gru_testkit::sio::{SioClient, SioOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_refuses_new_clients_and_cuts_stuck_ones() {
    let mut cluster = start(&[("GRU_SPEAR__MAX_MSGS_PER_SEC", "5000")]).await;
    let addr = sio(&cluster);
    let sender = client(&cluster, 1, SioOptions::default()).await;
    let stuck = small_window_client(&cluster, 2).await;
    sender.join(9).await;
    stuck.join(9).await;
    stuck.stop_reading();
    // Fill the stuck client's socket buffers and its send queue.
    let content = "s".repeat(16 * 1024);
    for _ in 0..400 {
        let payload = json!({"type": 0, "target": {"id": 2}, "content": content});
        sender.call("msg", &payload).await.expect("msg ack");
    }
    assert!(stuck.tcp_established(), "still connected before the stop");

    let stopping = Instant::now();
    cluster.signal(NODE, "TERM");
    let mut answers = Vec::new();
    while stopping.elapsed() < Duration::from_millis(1500) {
        match SioClient::connect(&addr, None).await {
            Ok(c) => answers.push(format!("connected (open: {})", c.is_open())),
            Err(e) => answers.push(e.to_string()),
        }
        // Pace of the new clients tried during the stop (a watch over 1.5 s).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = cluster
        .wait_exit(NODE, Duration::from_secs(15))
        .expect("the node exits");
    let took = stopping.elapsed();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        !answers.iter().any(|a| a.contains("Invalid namespace")),
        "a stopping spear must refuse connections, not half-serve them: {answers:?}"
    );
    let log = cluster.log(NODE);
    assert!(
        !log.contains("did not stop in time"),
        "no shutdown phase ran over its time"
    );
    assert!(
        log.contains("drain time over: connections cut"),
        "the stuck client was cut at the end of the drain"
    );
    eprintln!("stopped in {took:?}; connection attempts while stopping: {answers:?}");
}
