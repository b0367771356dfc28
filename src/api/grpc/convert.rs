//! The gRPC edge's one error table: control-plane and id errors onto gRPC statuses (a not-leader
//! answer carries the leader's address in metadata), and id blocks onto protobuf.

use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::net::grpc::pb;
use crate::net::grpc::{LEADER_GRPC_HEADER, LEADER_ID_HEADER};
use crate::raft::ControlError;
use crate::services::idgen::{IdBlock, IdError};

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotLeader { leader } => {
                let mut status = Status::failed_precondition(format!(
                    "not the leader: {}",
                    leader
                        .as_ref()
                        .map_or("unknown".into(), |l| l.id.to_string())
                ));
                if let Some(leader) = leader {
                    if let Ok(v) = MetadataValue::try_from(leader.id.to_string()) {
                        status.metadata_mut().insert(LEADER_ID_HEADER, v);
                    }
                    if let Some(peer) = leader.peer {
                        if let Ok(v) = MetadataValue::try_from(peer.grpc) {
                            status.metadata_mut().insert(LEADER_GRPC_HEADER, v);
                        }
                    }
                }
                status
            }
            ControlError::NoQuorum(msg) => Status::unavailable(msg),
            ControlError::Invalid(msg) => Status::invalid_argument(msg),
            ControlError::Fatal(msg) => Status::unavailable(format!("raft stopped: {msg}")),
        }
    }
}

impl From<IdError> for Status {
    fn from(e: IdError) -> Self {
        match e {
            IdError::NotLeader { leader } => ControlError::NotLeader { leader }.into(),
            IdError::BadCount { .. } => Status::invalid_argument(e.to_string()),
            IdError::Unavailable(msg) => Status::unavailable(msg),
            IdError::Ahead(msg) => Status::resource_exhausted(msg),
        }
    }
}

impl From<IdBlock> for pb::IdBlock {
    fn from(b: IdBlock) -> Self {
        Self {
            first: b.first,
            count: b.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader_address() {
        let status = Status::from(ControlError::NotLeader {
            leader: Some(crate::raft::LeaderRef {
                id: 2,
                peer: Some(crate::raft::RaftPeer {
                    grpc: "127.0.0.1:7102".into(),
                    http: "127.0.0.1:8102".into(),
                }),
            }),
        });
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            status
                .metadata()
                .get(LEADER_GRPC_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7102")
        );
    }
}
