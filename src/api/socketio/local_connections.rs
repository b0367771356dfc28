//! This spear's answer to the server API's questions about a user: which connections it has
//! here, and closing them with a reason the client sees (`server_disconnect`, reason
//! `by_server`).

use std::sync::Arc;

use super::closer::{CloseReason, Closer};
use super::link::Link;
use super::links::Links;
use super::ConnId;
use crate::config::NodeId;
use crate::services::spear::{ConnectionInfo, LocalSessions, Roster};

/// The socket.io side of [`LocalSessions`].
pub struct SocketSessions {
    me: NodeId,
    links: Links,
    roster: Arc<Roster<ConnId>>,
    closer: Arc<Closer>,
}

impl SocketSessions {
    /// Spear `me`'s connections: `roster` says whose they are, `links` holds them, `closer`
    /// ends them.
    pub fn new(me: NodeId, links: Links, roster: Arc<Roster<ConnId>>, closer: Arc<Closer>) -> Self {
        Self {
            me,
            links,
            roster,
            closer,
        }
    }

    fn found(&self, uid: u64) -> Vec<(Link, ConnectionInfo)> {
        self.roster
            .conns_of(uid)
            .into_iter()
            .filter_map(|(sid, groups)| {
                let link = self.links.get(sid)?;
                let info = self.info(&link, groups);
                Some((link, info))
            })
            .collect()
    }

    fn info(&self, link: &Link, groups: Vec<u64>) -> ConnectionInfo {
        ConnectionInfo {
            spear: self.me,
            id: link.id().to_string(),
            transport: link.transport_name().to_string(),
            connected_at_ms: link.state().map_or(0, |c| c.connected_at_ms()),
            groups,
            peer: link.peer().map(|p| p.to_string()),
        }
    }
}

impl LocalSessions for SocketSessions {
    fn list(&self, uid: u64) -> Vec<ConnectionInfo> {
        self.found(uid).into_iter().map(|(_, info)| info).collect()
    }

    fn disconnect(&self, uid: u64, reason: &str) -> Vec<ConnectionInfo> {
        self.found(uid)
            .into_iter()
            .map(|(link, info)| {
                self.closer
                    .close(&link, CloseReason::ByServer, Some(reason));
                info
            })
            .collect()
    }
}
