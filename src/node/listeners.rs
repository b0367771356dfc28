//! Every TCP listener of a node, bound before anything else starts: a taken address fails the
//! start while nothing is running yet, and names the address.
//!
//! Each listens with the largest accept queue the kernel allows (`net.core.somaxconn`, 4096
//! by default since Linux 5.4). The usual 128 overflows when hundreds of clients connect at
//! once — a reconnect storm after a spear is lost — and every connection it drops waits for
//! its SYN to be retransmitted, a second or more.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use super::NodeError;
use crate::config::{NodeConfig, Role};

/// The bound listeners of one node.
pub(super) struct Listeners {
    /// Internal gRPC.
    pub(super) grpc: TcpListener,
    /// socket.io, on spear nodes.
    pub(super) sio: Option<TcpListener>,
    /// The HTTP surfaces'.
    pub(super) doors: Doors,
}

/// The node's HTTP listeners: the public one, and the admin surface's and the server API's
/// when they have addresses of their own.
pub(super) struct Doors {
    /// The public surface.
    pub(super) http: TcpListener,
    /// The admin surface, when it has an address of its own.
    pub(super) admin: Option<TcpListener>,
    /// The server API (spear nodes), when it has an address of its own.
    pub(super) server_api: Option<TcpListener>,
}

impl Listeners {
    /// Binds `node`'s listeners: the public HTTP surface, internal gRPC, socket.io on spears,
    /// and the admin surface and the server API where they do not share the public address
    /// (then they are served on it: `gru dev`).
    pub(super) fn bind(node: &NodeConfig) -> Result<Self, NodeError> {
        let http = bind("http", node.listen.http)?;
        let grpc = bind("grpc", node.listen.grpc)?;
        let spear = node.has_role(Role::Spear);
        let sio = match (spear, node.listen.sio) {
            (true, Some(addr)) => Some(bind("socket.io", addr)?),
            _ => None,
        };
        let own = |addr: Option<SocketAddr>| addr.filter(|a| *a != node.listen.http);
        let admin = own(node.listen.admin)
            .map(|addr| bind("admin", addr))
            .transpose()?;
        let server_api = own(node.listen.server_api.filter(|_| spear))
            .map(|addr| bind("server API", addr))
            .transpose()?;
        Ok(Self {
            grpc,
            sio,
            doors: Doors {
                http,
                admin,
                server_api,
            },
        })
    }
}

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 65_535;

/// Binds `addr` (tokio's runtime must be running: the listener registers with it).
fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As `TcpListener::bind` does: a restarted node takes its port back while connections
        // of its last run are still in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|source| NodeError::Bind { what, addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listens_with_more_than_the_usual_backlog_and_names_a_taken_address() {
        let first = bind("test", "127.0.0.1:0".parse().expect("addr")).expect("binds");
        let addr = first.local_addr().expect("bound");
        // Connections the listener has not accepted yet wait in its queue: 300 fit, where the
        // usual backlog of 128 would drop SYNs (connects would then hang on retransmits).
        // Only where the kernel allows such a queue at all.
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let queued = if somaxconn >= 300 { 300 } else { 0 };
        let mut waiting = Vec::new();
        for _ in 0..queued {
            let connect = tokio::net::TcpStream::connect(addr);
            let stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
                .await
                .expect("connected without a SYN retransmit")
                .expect("connects");
            waiting.push(stream);
        }
        match bind("test", addr) {
            Err(NodeError::Bind { what, addr: a, .. }) => assert_eq!((what, a), ("test", addr)),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a taken address must not bind"),
        }
    }
}
