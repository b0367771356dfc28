//! `leader_stop_with_id_streams`: a leader stopped gracefully while other nodes hold id streams
//! open to it ends those streams and stops at once. Its graceful gRPC stop used to wait for
//! them (up to the stage's 5 s deadline) while it still led and answered nobody: spears could
//! not renew their leases, fell out of the cluster and cut every client.

use std::time::Duration;

use gru::net::grpc::pb::id_gen_client::IdGenClient;
use gru::net::grpc::pb::NextIdsRequest;
use gru_testkit::{TestCluster, CORES};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_stop_with_id_streams() {
    let (mut cluster, leader, _) = TestCluster::three_cores(crate::gru()).await;

    // An id stream to the leader, as a spear holds one: open, answered once, then idle.
    let (requests, rx) = mpsc::channel::<NextIdsRequest>(1);
    let outbound =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|req| (req, rx)) },
        );
    // With the harness's certificate: the internal port speaks mutual TLS.
    let channel = cluster
        .tool_pool()
        .get(&cluster.grpc_addr(leader))
        .expect("the leader's address");
    let mut client = IdGenClient::new(channel);
    let mut replies = client
        .next_stream(outbound)
        .await
        .expect("the leader opens an id stream")
        .into_inner();
    requests
        .send(NextIdsRequest {
            count: 1,
            bounded: false,
        })
        .await
        .expect("request");
    let first = replies.message().await.expect("an answer").expect("ids");
    assert_eq!(first.blocks.iter().map(|b| b.count).sum::<u32>(), 1);

    assert!(cluster.stop(leader), "the leader stops cleanly");
    let log = cluster.log(leader);
    assert!(
        !log.contains("did not stop in time"),
        "the leader's stop waited for a worker:\n{log}"
    );
    // The stream was ended by the server, not left open: its end is an error or a close.
    let end = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("the stream ends");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no ids after the stop: {end:?}"
    );
    drop(requests);

    // The others go on: a new leader is elected.
    let survivors: Vec<u64> = CORES.iter().copied().filter(|id| *id != leader).collect();
    let (new_leader, _) = cluster
        .wait_leader(&survivors, Duration::from_secs(20))
        .await;
    assert_ne!(new_leader, leader);
}
