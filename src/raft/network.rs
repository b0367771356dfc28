//! Raft RPCs to peers over the internal gRPC address.
//!
//! openraft's request and response types travel as serde JSON inside protobuf `bytes`; the
//! remote answer is a `Result` so a Raft-level error on the peer reaches openraft as a
//! `RemoteError`, distinct from a transport failure.

use std::future::Future;
use std::io::Cursor;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Snapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use crate::config::NodeId;
use crate::net::grpc::pb::raft_transport_client::RaftTransportClient;
use crate::net::grpc::pb::{RaftPayload, SnapshotPayload};
use crate::net::grpc::ChannelPool;
use crate::raft::types::{RaftPeer, SnapshotMeta, TypeConfig, Vote};

/// The header of a snapshot transfer: who sends it and what it is.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
}

/// Creates a [`PeerConnection`] per replication target.
pub(crate) struct GrpcNetwork {
    pool: ChannelPool,
}

impl GrpcNetwork {
    /// Raft connections drawn from `pool`.
    pub(crate) fn new(pool: ChannelPool) -> Self {
        Self { pool }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &RaftPeer) -> Self::Network {
        PeerConnection {
            target,
            client: self
                .pool
                .get(&node.grpc)
                .map(RaftTransportClient::new)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The Raft RPC client for one peer.
pub(crate) struct PeerConnection {
    target: NodeId,
    client: Result<RaftTransportClient<Channel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

type RpcResult<T, E> = Result<T, RPCError<NodeId, RaftPeer, E>>;

impl PeerConnection {
    fn client(&self) -> Result<RaftTransportClient<Channel>, Unreachable> {
        self.client
            .clone()
            .map_err(|e| Unreachable::new(&TransportError(e)))
    }

    async fn call<Req, Resp, E, F, Fut>(
        &self,
        req: &Req,
        ttl: Duration,
        send: F,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftTransportClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let json = serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))?;
        let mut request = tonic::Request::new(RaftPayload { json });
        request.set_timeout(ttl);
        let reply = send(self.client()?, request).await.map_err(status_to_rpc)?;
        let decoded: Result<Resp, E> =
            serde_json::from_slice(&reply.into_inner().json).map_err(|e| NetworkError::new(&e))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A transport failure: connection refused or timed out means the peer is unreachable (openraft
/// backs off); anything else is a network error worth retrying at once.
fn status_to_rpc<E: std::error::Error>(status: tonic::Status) -> RPCError<NodeId, RaftPeer, E> {
    let err = TransportError(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&err))
        }
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(&rpc, option.hard_ttl(), |mut c, r| async move {
            c.append_entries(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(&rpc, option.hard_ttl(), |mut c, r| async move {
            c.vote(r).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
        };
        let header_json = serde_json::to_vec(&header).map_err(|e| NetworkError::new(&e))?;
        let data: Cursor<Vec<u8>> = *snapshot.snapshot;
        let mut request = tonic::Request::new(SnapshotPayload {
            header_json,
            data: data.into_inner(),
        });
        request.set_timeout(option.hard_ttl());
        let mut client = self.client()?;
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = client.install_snapshot(request) => reply,
        };
        let reply = reply.map_err(|status| {
            let err = TransportError(format!("{}: {}", status.code(), status.message()));
            StreamingError::Unreachable(Unreachable::new(&err))
        })?;
        let decoded: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            serde_json::from_slice(&reply.into_inner().json).map_err(|e| NetworkError::new(&e))?;
        decoded.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn backoff(&self) -> Backoff {
        // A restarted peer is usually back within a fraction of a second on a LAN.
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
