//! A fault-injecting TCP proxy in front of a node's internal gRPC address.
//!
//! Every test node gets its own loopback address (127.0.0.1x) and dials its peers from it, so
//! a proxy knows which node a connection comes from. `block(ip)` drops that node's existing
//! connections and refuses new ones; the test process itself (127.0.0.1) is never blocked.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct Rules {
    blocked: HashSet<IpAddr>,
    conns: Vec<(IpAddr, AbortHandle)>,
}

/// One proxy: `listen` → `target`.
pub struct FaultProxy {
    listen: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts forwarding `listen` to `target` on the current tokio runtime.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let std_listener = std::net::TcpListener::bind(listen).expect("bind proxy");
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking proxy");
        let listener = TcpListener::from_std(std_listener).expect("tokio proxy listener");
        let rules: Arc<Mutex<Rules>> = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, target, rules.clone())).abort_handle();
        Self {
            listen,
            rules,
            accept,
        }
    }

    /// The address clients dial.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Cuts every connection from `ip` and refuses new ones.
    pub fn block(&self, ip: IpAddr) {
        let mut rules = self.rules.lock().expect("rules");
        rules.blocked.insert(ip);
        rules.conns.retain(|(from, handle)| {
            if *from == ip {
                handle.abort();
                false
            } else {
                true
            }
        });
    }

    /// Lets `ip` connect again.
    pub fn unblock(&self, ip: IpAddr) {
        self.rules.lock().expect("rules").blocked.remove(&ip);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, handle) in self
            .rules
            .lock()
            .map(|mut r| std::mem::take(&mut r.conns))
            .unwrap_or_default()
        {
            handle.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, rules: Arc<Mutex<Rules>>) {
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            continue;
        };
        let from = peer.ip();
        let mut guard = rules.lock().expect("rules");
        if guard.blocked.contains(&from) {
            continue; // dropped: the peer sees the connection closed at once
        }
        guard.conns.retain(|(_, h)| !h.is_finished());
        let handle = tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = outbound.set_nodelay(true);
                let _ = inbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        })
        .abort_handle();
        guard.conns.push((from, handle));
    }
}
