//! Conversions between protobuf messages and gru's types, and the one mapping of control-plane
//! errors onto gRPC statuses.

use tonic::metadata::MetadataValue;
use tonic::Status;

use super::pb;
use super::{LEADER_GRPC_HEADER, LEADER_ID_HEADER};
use crate::config::Role;
use crate::raft::{ControlError, Member, NodeStatus};
use crate::services::idgen::{IdBlock, IdError};

impl From<&Member> for pb::Member {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id,
            roles: m.roles.iter().map(ToString::to_string).collect(),
            grpc: m.grpc.clone(),
            http: m.http.clone(),
            sio: m.sio.clone().unwrap_or_default(),
            gossip: m.gossip.clone(),
        }
    }
}

fn parse_role(s: &str) -> Result<Role, Status> {
    match s {
        "core" => Ok(Role::Core),
        "spear" => Ok(Role::Spear),
        "ticket" => Ok(Role::Ticket),
        "stat" => Ok(Role::Stat),
        other => Err(Status::invalid_argument(format!("unknown role {other:?}"))),
    }
}

fn require_addr(field: &str, value: &str) -> Result<(), Status> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(Status::invalid_argument(format!(
            "{field} must be host:port, got {value:?}"
        ))),
    }
}

impl TryFrom<pb::Member> for Member {
    type Error = Status;

    fn try_from(m: pb::Member) -> Result<Self, Status> {
        if m.id == 0 {
            return Err(Status::invalid_argument("member id must be at least 1"));
        }
        require_addr("grpc", &m.grpc)?;
        require_addr("http", &m.http)?;
        if !m.sio.is_empty() {
            require_addr("sio", &m.sio)?;
        }
        let roles = m
            .roles
            .iter()
            .map(|r| parse_role(r))
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            return Err(Status::invalid_argument("a member needs at least one role"));
        }
        Ok(Self {
            id: m.id,
            roles,
            grpc: m.grpc,
            http: m.http,
            sio: Some(m.sio).filter(|s| !s.is_empty()),
            gossip: m.gossip,
        })
    }
}

impl From<NodeStatus> for pb::NodeStatusReply {
    fn from(s: NodeStatus) -> Self {
        Self {
            node_id: s.node_id,
            initialized: s.initialized,
            term: s.term,
            current_leader: s.current_leader.unwrap_or(0),
            server_state: s.server_state,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            voters: s.voters,
            learners: s.learners,
        }
    }
}

impl From<pb::NodeStatusReply> for NodeStatus {
    fn from(s: pb::NodeStatusReply) -> Self {
        Self {
            node_id: s.node_id,
            initialized: s.initialized,
            term: s.term,
            current_leader: Some(s.current_leader).filter(|id| *id != 0),
            server_state: s.server_state,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            voters: s.voters,
            learners: s.learners,
        }
    }
}

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
        }
    }
}

/// The blocks of an id answer, as `(first, count)`.
pub(super) fn id_blocks(reply: pb::IdsReply) -> Vec<(u64, u32)> {
    reply
        .blocks
        .into_iter()
        .map(|b| (b.first, b.count))
        .collect()
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

    fn member() -> Member {
        Member {
            id: 4,
            roles: vec![Role::Spear, Role::Ticket],
            grpc: "127.0.0.1:7104".into(),
            http: "127.0.0.1:8104".into(),
            sio: Some("127.0.0.1:31001".into()),
            gossip: "127.0.0.1:7204".into(),
        }
    }

    #[test]
    fn member_round_trips_through_protobuf() {
        let m = member();
        assert_eq!(Member::try_from(pb::Member::from(&m)).ok(), Some(m));
    }

    #[test]
    fn bad_members_are_refused() {
        let mut bad_role = pb::Member::from(&member());
        bad_role.roles.push("spearr".into());
        assert_eq!(
            Member::try_from(bad_role).err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let mut bad_addr = pb::Member::from(&member());
        bad_addr.http = "nowhere".into();
        assert!(Member::try_from(bad_addr).is_err());
        let mut no_id = pb::Member::from(&member());
        no_id.id = 0;
        assert!(Member::try_from(no_id).is_err());
    }

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
