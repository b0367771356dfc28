//! The control plane's types on the wire: conversions between protobuf messages and
//! [`Member`] / [`NodeStatus`]. A member that arrives malformed is refused with the gRPC status
//! the caller is answered with.

use tonic::Status;

use super::{Member, NodeStatus};
use crate::config::Role;
use crate::net::grpc::pb;

impl From<&Member> for pb::Member {
    fn from(m: &Member) -> Self {
        Self {
            id: m.id,
            roles: m.roles.iter().map(ToString::to_string).collect(),
            grpc: m.grpc.clone(),
            http: m.http.clone(),
            sio: m.sio.clone().unwrap_or_default(),
            gossip: m.gossip.clone(),
            admin: m.admin.clone().unwrap_or_default(),
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
        if !m.admin.is_empty() {
            require_addr("admin", &m.admin)?;
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
            admin: Some(m.admin).filter(|s| !s.is_empty()),
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
            admin: Some("127.0.0.1:9104".into()),
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
}
