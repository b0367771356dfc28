//! This spear's answer to the server API's questions about a user: which connections it has
//! here, and closing them with a reason the client sees (`server_disconnect`, reason
//! `by_server`).

use std::sync::Arc;

use socketioxide::extract::SocketRef;
use socketioxide::{SocketIo, TransportType};

use super::closer::{CloseReason, Closer};
use super::conn::ConnState;
use super::server::ConnId;
use crate::api::serve::Conn;
use crate::config::NodeId;
use crate::services::spear::{ConnectionInfo, LocalSessions, Roster};

/// The socket.io side of [`LocalSessions`].
pub struct SocketSessions {
    me: NodeId,
    io: SocketIo,
    roster: Arc<Roster<ConnId>>,
    closer: Arc<Closer>,
}

impl SocketSessions {
    /// Spear `me`'s connections: `roster` says whose they are, `io` holds them, `closer` ends
    /// them.
    pub fn new(me: NodeId, io: SocketIo, roster: Arc<Roster<ConnId>>, closer: Arc<Closer>) -> Self {
        Self {
            me,
            io,
            roster,
            closer,
        }
    }

    fn found(&self, uid: u64) -> Vec<(SocketRef, ConnectionInfo)> {
        self.roster
            .conns_of(uid)
            .into_iter()
            .filter_map(|(sid, groups)| {
                let s = self.io.get_socket(sid)?;
                let info = self.info(&s, groups);
                Some((s, info))
            })
            .collect()
    }

    fn info(&self, s: &SocketRef, groups: Vec<u64>) -> ConnectionInfo {
        let transport = match s.transport_type() {
            TransportType::Websocket => "websocket",
            TransportType::Polling => "polling",
        };
        let peer = s
            .extensions
            .get::<Conn>()
            .or_else(|| s.req_parts().extensions.get::<Conn>().cloned())
            .map(|c| c.peer().to_string());
        ConnectionInfo {
            spear: self.me,
            id: s.id.to_string(),
            transport: transport.to_string(),
            connected_at_ms: s
                .extensions
                .get::<ConnState>()
                .map_or(0, |c| c.connected_at_ms()),
            groups,
            peer,
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
            .map(|(s, info)| {
                self.closer.close(&s, CloseReason::ByServer, Some(reason));
                info
            })
            .collect()
    }
}
