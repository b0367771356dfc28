//! A user's connections across the cluster, for the server API: list them, or close them with
//! a reason the client sees. Each spear answers for its own clients ([`LocalSessions`], which
//! the socket.io edge implements); [`UserSessions`] asks this spear directly and every other
//! registered spear over gRPC (`SpearSessions`), at once.

use std::sync::Arc;

use serde::Serialize;

use crate::config::NodeId;
use crate::net::grpc::{pb, ClusterClient};
use crate::raft::ClusterView;

/// One connection of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    /// The spear it is on.
    pub spear: NodeId,
    /// Its socket.io session id.
    pub id: String,
    /// `websocket` or `polling`.
    pub transport: String,
    /// When it connected, Unix ms.
    pub connected_at_ms: u64,
    /// The groups it joined, ascending.
    pub groups: Vec<u64>,
    /// The client's address as the spear sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

impl From<ConnectionInfo> for pb::ConnectionInfo {
    fn from(c: ConnectionInfo) -> Self {
        Self {
            spear: c.spear,
            id: c.id,
            transport: c.transport,
            connected_at_ms: c.connected_at_ms,
            groups: c.groups,
            peer: c.peer.unwrap_or_default(),
        }
    }
}

impl From<pb::ConnectionInfo> for ConnectionInfo {
    fn from(c: pb::ConnectionInfo) -> Self {
        Self {
            spear: c.spear,
            id: c.id,
            transport: c.transport,
            connected_at_ms: c.connected_at_ms,
            groups: c.groups,
            peer: Some(c.peer).filter(|p| !p.is_empty()),
        }
    }
}

/// A spear's own clients.
pub trait LocalSessions: Send + Sync {
    /// User `uid`'s authenticated connections here.
    fn list(&self, uid: u64) -> Vec<ConnectionInfo>;
    /// Closes them, telling each `reason`; returns those it closed.
    fn disconnect(&self, uid: u64, reason: &str) -> Vec<ConnectionInfo>;
}

/// A node that holds no clients (not a spear): it asks the spears, and has nothing of its own.
pub struct NoClients;

impl LocalSessions for NoClients {
    fn list(&self, _: u64) -> Vec<ConnectionInfo> {
        Vec::new()
    }

    fn disconnect(&self, _: u64, _: &str) -> Vec<ConnectionInfo> {
        Vec::new()
    }
}

/// What a sweep over the spears found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sweep {
    /// The connections (listed, or closed).
    pub connections: Vec<ConnectionInfo>,
    /// The spears that answered.
    pub spears: Vec<NodeId>,
    /// The spears that did not, and why: the answer may be incomplete.
    pub unreachable: Vec<Unreachable>,
}

/// A spear that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The spear.
    pub spear: NodeId,
    /// Why.
    pub error: String,
}

/// Why no sweep could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionsError {
    /// The spear registry could not be read (no leader).
    #[error("the spear registry is unavailable: {0}")]
    NoRegistry(String),
}

/// A user's connections on every spear.
pub struct UserSessions {
    me: NodeId,
    local: Arc<dyn LocalSessions>,
    client: Arc<ClusterClient>,
}

impl UserSessions {
    /// Spear `me` answering for `local` and asking the others through `client`.
    pub fn new(me: NodeId, local: Arc<dyn LocalSessions>, client: Arc<ClusterClient>) -> Self {
        Self { me, local, client }
    }

    /// The other registered spears and their gRPC addresses.
    async fn others(&self) -> Result<Vec<(NodeId, Option<String>)>, SessionsError> {
        let view: ClusterView = self
            .client
            .cluster_view(false)
            .await
            .map_err(|e| SessionsError::NoRegistry(e.to_string()))?;
        Ok(view
            .spears
            .iter()
            .filter(|s| s.id != self.me)
            .map(|s| {
                let grpc = view
                    .node(s.id)
                    .map(|n| n.grpc.clone())
                    .filter(|g| !g.is_empty());
                (s.id, grpc)
            })
            .collect())
    }

    /// User `uid`'s connections everywhere.
    pub async fn list(&self, uid: u64) -> Result<Sweep, SessionsError> {
        self.sweep(self.local.list(uid), |addr| async move {
            self.client.user_connections(&addr, uid).await
        })
        .await
    }

    /// Closes user `uid`'s connections everywhere, telling each `reason`.
    pub async fn disconnect(&self, uid: u64, reason: &str) -> Result<Sweep, SessionsError> {
        self.sweep(self.local.disconnect(uid, reason), |addr| async move {
            self.client.disconnect_user(&addr, uid, reason).await
        })
        .await
    }

    async fn sweep<F, Fut>(&self, here: Vec<ConnectionInfo>, ask: F) -> Result<Sweep, SessionsError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<
            Output = Result<Vec<pb::ConnectionInfo>, crate::net::grpc::ClientError>,
        >,
    {
        let others = self.others().await?;
        let asks = others.into_iter().map(|(spear, grpc)| {
            let call = grpc.map(&ask);
            async move {
                match call {
                    None => (spear, Err("its gRPC address is not known yet".to_string())),
                    Some(call) => (spear, call.await.map_err(|e| e.to_string())),
                }
            }
        });
        let answers = futures_util::future::join_all(asks).await;
        let mut sweep = Sweep {
            connections: here,
            spears: vec![self.me],
            unreachable: Vec::new(),
        };
        for (spear, answer) in answers {
            match answer {
                Ok(found) => {
                    sweep.spears.push(spear);
                    sweep
                        .connections
                        .extend(found.into_iter().map(ConnectionInfo::from));
                }
                Err(error) => sweep.unreachable.push(Unreachable { spear, error }),
            }
        }
        sweep.spears.sort_unstable();
        sweep
            .connections
            .sort_by_key(|c| (c.spear, c.connected_at_ms));
        Ok(sweep)
    }
}
