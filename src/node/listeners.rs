//! Every TCP listener of a node, bound before anything else starts: a taken address fails the
//! start while nothing is running yet, and names the address.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::NodeError;
use crate::config::{NodeConfig, Role};

/// The bound listeners of one node.
pub(super) struct Listeners {
    pub(super) http: TcpListener,
    pub(super) grpc: TcpListener,
    /// socket.io, on spear nodes.
    pub(super) sio: Option<TcpListener>,
}

impl Listeners {
    /// Binds `node`'s listeners: HTTP, internal gRPC, and socket.io on spears.
    pub(super) async fn bind(node: &NodeConfig) -> Result<Self, NodeError> {
        let http = bind("http", node.listen.http).await?;
        let grpc = bind("grpc", node.listen.grpc).await?;
        let sio = match (node.has_role(Role::Spear), node.listen.sio) {
            (true, Some(addr)) => Some(bind("socket.io", addr).await?),
            _ => None,
        };
        Ok(Self { http, grpc, sio })
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { what, addr, source })
}
