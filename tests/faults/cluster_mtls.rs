//! `cluster_mtls`: three core nodes with mutual TLS on the internal port (the default). A
//! caller with a certificate of another CA, and one without TLS at all, reach no handler:
//! taking ids, joining as a core node, registering or renewing a spear's lease, and a Raft vote
//! all fail at the connection, where the harness's own certificate reaches the same handlers.
//! A spear node started with a certificate of another CA, and one started without TLS, never
//! register; the leader and its term are undisturbed throughout; the same spear with the
//! cluster's certificate registers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gru::config::{ClusterTlsSection, Role};
use gru::net::grpc::pb::raft_transport_client::RaftTransportClient;
use gru::net::grpc::pb::RaftPayload;
use gru::net::grpc::{ChannelPool, ClientError, ClusterClient};
use gru::net::tls::{make_certs, ClusterTls};
use gru::raft::Member;
use gru_testkit::{NodeSpec, TestCluster};

const SPEAR: u64 = 4;

/// A client of `cluster`'s core nodes whose connections use `tls` (`None`: plain text).
fn client_with(cluster: &TestCluster, tls: Option<&Path>) -> Arc<ClusterClient> {
    let tls = tls.map(|dir| {
        let section = ClusterTlsSection {
            dir: dir.to_path_buf(),
            ..ClusterTlsSection::default()
        };
        ClusterTls::for_tool(&section)
            .expect("certificate")
            .expect("on")
            .client
    });
    let seeds = cluster
        .core_ids()
        .iter()
        .map(|id| cluster.grpc_addr(*id))
        .collect();
    Arc::new(ClusterClient::new(
        seeds,
        ChannelPool::new(Duration::from_millis(500)).with_tls(tls),
        Duration::from_millis(1000),
        Duration::from_secs(3),
    ))
}

/// A Raft vote with a term far ahead, sent to `addr` over `pool`: what answers it.
async fn vote(pool: &ChannelPool, addr: &str) -> Result<(), tonic::Status> {
    let channel = pool.get(addr).expect("address");
    let mut raft = RaftTransportClient::new(channel);
    let mut req = tonic::Request::new(RaftPayload {
        json: br#"{"vote":{"leader_id":{"term":1000000,"node_id":99},"committed":false},"last_log_id":null}"#.to_vec(),
    });
    req.set_timeout(Duration::from_secs(3));
    raft.vote(req).await.map(|_| ())
}

fn spear_member(id: u64) -> Member {
    Member {
        id,
        roles: vec![Role::Spear],
        grpc: "127.0.0.1:1".into(),
        http: "127.0.0.1:2".into(),
        sio: Some("127.0.0.1:3".into()),
        gossip: "127.0.0.1:4".into(),
        admin: None,
    }
}

/// Whether a call failed with the connection (refused by TLS, or plain text where TLS is
/// spoken) rather than with a handler's answer: tonic reports those as Unavailable, Unknown,
/// Internal (an HTTP/2 protocol error) or Cancelled (the connection closed), codes none of
/// these handlers answer with.
fn at_connection(code: tonic::Code, _message: &str) -> bool {
    use tonic::Code::{Cancelled, Internal, Unavailable, Unknown};
    matches!(code, Unavailable | Unknown | Internal | Cancelled)
}

/// Whether `status` came from the transport (its source is a transport error), not a handler.
fn from_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some())
}

/// Whether `result` failed before any handler: at the connection (TLS refused), not with an
/// answer of the server.
fn refused_at_connection<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> bool {
    match result {
        Ok(_) => false,
        // The client gives up trying every seed: nobody let it in.
        Err(ClientError::NoLeader { .. }) => true,
        Err(ClientError::Rejected { code, message }) => at_connection(*code, message),
        Err(ClientError::BadReply(_)) => false,
    }
}

/// Starts the spear and, for four seconds (its first registration and a lease's worth of
/// renewals), looks at the leader's registry every 100 ms: it must never list the spear.
/// Then stops it.
async fn never_registers(cluster: &mut TestCluster, leader: u64, with: &str) {
    cluster.start(SPEAR);
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < until {
        let view = cluster.view(leader).await.expect("view");
        assert!(
            view.spears.is_empty(),
            "a spear with {with} registered: {view:?}"
        );
        // Pace of a watch for what must not happen over the four seconds.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop(SPEAR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mtls() {
    let (mut cluster, leader, term) = TestCluster::three_cores(gru_testkit::gru()).await;
    let foreign = tempfile::tempdir().expect("dir");
    make_certs(foreign.path(), &[SPEAR], false).expect("another CA");
    // An outsider that trusts the cluster's CA (so that it is the server that must refuse)
    // but holds a certificate of another CA.
    let outsider_dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        cluster.certs_dir().join("ca.pem"),
        outsider_dir.path().join("ca.pem"),
    )
    .expect("copy");
    for file in ["client.pem", "client.key"] {
        std::fs::copy(foreign.path().join(file), outsider_dir.path().join(file)).expect("copy");
    }

    // The harness's own certificate reaches the handlers: the control that proves the calls
    // below can succeed.
    let trusted = client_with(&cluster, Some(&cluster.certs_dir()));
    trusted
        .next_ids(1)
        .await
        .expect("ids with the cluster's certificate");
    let leader_addr = cluster.grpc_addr(leader);
    let answered = vote(&cluster.tool_pool(), &leader_addr).await;
    // The handler answers (a vote it rejects, or a payload it cannot decode), never Unavailable.
    assert!(
        !answered.as_ref().is_err_and(from_transport),
        "the trusted vote reached Raft: {answered:?}"
    );

    for (who, tls) in [
        ("another CA's certificate", Some(outsider_dir.path())),
        ("no TLS", None),
    ] {
        let outsider = client_with(&cluster, tls);
        let ids = outsider.next_ids(1).await;
        assert!(refused_at_connection(&ids), "{who}: ids {ids:?}");
        let heartbeat = outsider.spear_heartbeat((&spear_member(77)).into()).await;
        assert!(
            refused_at_connection(&heartbeat),
            "{who}: lease {heartbeat:?}"
        );
        let mut core = spear_member(78);
        core.roles = vec![Role::Core];
        let join = outsider.join_core((&core).into()).await;
        assert!(refused_at_connection(&join), "{who}: join {join:?}");
        let pool = match tls {
            Some(dir) => {
                let section = ClusterTlsSection {
                    dir: dir.to_path_buf(),
                    ..ClusterTlsSection::default()
                };
                let tls = ClusterTls::for_tool(&section)
                    .expect("cert")
                    .map(|t| t.client);
                ChannelPool::new(Duration::from_millis(500)).with_tls(tls)
            }
            None => ChannelPool::new(Duration::from_millis(500)),
        };
        let voted = vote(&pool, &leader_addr).await;
        assert!(
            voted.as_ref().is_err_and(from_transport),
            "{who}: vote {voted:?}"
        );
    }

    // A spear node with another CA's certificate, then one without TLS: never registered.
    cluster.add_node(NodeSpec::spear(SPEAR));
    let certs = cluster.certs_dir();
    let (pem, key) = (certs.join("node-4.pem"), certs.join("node-4.key"));
    let (good_pem, good_key) = (
        std::fs::read(&pem).expect("pem"),
        std::fs::read(&key).expect("key"),
    );
    std::fs::copy(foreign.path().join("node-4.pem"), &pem).expect("swap");
    std::fs::copy(foreign.path().join("node-4.key"), &key).expect("swap");
    never_registers(&mut cluster, leader, "another CA's certificate").await;
    std::fs::write(&pem, &good_pem).expect("restore");
    std::fs::write(&key, &good_key).expect("restore");
    cluster.set_node_env(SPEAR, "GRU_CLUSTER_TLS__ENABLED", "false");
    never_registers(&mut cluster, leader, "no TLS").await;

    // Undisturbed: the same leader in the same term.
    let (now_leader, now_term) = cluster
        .wait_leader(&cluster.core_ids(), Duration::from_secs(10))
        .await;
    assert_eq!(
        (now_leader, now_term),
        (leader, term),
        "the leader was disturbed"
    );

    // With the cluster's certificate it joins.
    cluster.set_node_env(SPEAR, "GRU_CLUSTER_TLS__ENABLED", "true");
    cluster.start(SPEAR);
    cluster.wait_spears(leader, 1).await;
    let log = cluster.log(SPEAR);
    assert!(
        log.contains("mutual_tls=true"),
        "the spear serves its internal port with TLS"
    );
}
