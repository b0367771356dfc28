//! `idgen_stream`: the `IdGen.NextStream` contract as spears use it. On the leader, each
//! request on one stream is answered in order with a contiguous block above the last; a bad
//! count ends the stream with INVALID_ARGUMENT; a follower ends it at the first request with
//! FAILED_PRECONDITION, which is how the client knows to fall back to the redirect-following
//! RPC.

use gru::net::grpc::ClientError;
use tonic::Code;

use gru_testkit::{TestCluster, CORES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idgen_stream() {
    let (cluster, leader, _) = TestCluster::three_cores(gru_testkit::gru()).await;
    let follower = CORES
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    let mut stream = cluster
        .client_of(leader)
        .open_id_stream()
        .await
        .expect("the leader accepts a stream");
    let mut last = 0u64;
    for count in [1u32, 3, 1000, 1, 7] {
        let blocks = stream.next(count).await.expect("ids over the stream");
        assert_eq!(blocks.len(), 1, "strict mode answers one block");
        let (first, got) = blocks[0];
        assert_eq!(got, count);
        assert!(first > last, "{first} follows {last}");
        last = first + u64::from(got) - 1;
    }
    match stream.next(0).await {
        Err(ClientError::Rejected { code, .. }) => assert_eq!(code, Code::InvalidArgument),
        other => panic!("a count of 0 must end the stream as invalid, got {other:?}"),
    }
    assert!(
        stream.next(1).await.is_err(),
        "a refused stream stays closed"
    );

    let mut stream = cluster
        .client_of(follower)
        .open_id_stream()
        .await
        .expect("a follower accepts the stream; it refuses the first request");
    match stream.next(1).await {
        Err(ClientError::Rejected { code, message }) => {
            assert_eq!(code, Code::FailedPrecondition, "{message}");
        }
        other => panic!("a follower must refuse strict ids, got {other:?}"),
    }
}
