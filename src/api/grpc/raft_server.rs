//! The receiving end of Raft RPCs: decode, hand to openraft, encode its answer.

use std::io::Cursor;

use openraft::Snapshot;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::net::grpc::pb::raft_transport_server::RaftTransport;
use crate::net::grpc::pb::{RaftPayload, SnapshotPayload};
use crate::raft::{GruRaft, SnapshotHeader};

/// Serves `RaftTransport` for the local Raft node.
pub(super) struct RaftService {
    pub(super) raft: GruRaft,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad Raft payload: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let json = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { json }))
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&req.into_inner().json)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc = decode(&req.into_inner().json)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let payload = req.into_inner();
        let header: SnapshotHeader = decode(&payload.header_json)?;
        let snapshot = Snapshot {
            meta: header.meta,
            snapshot: Box::new(Cursor::new(payload.data)),
        };
        reply(&self.raft.install_full_snapshot(header.vote, snapshot).await)
    }
}
