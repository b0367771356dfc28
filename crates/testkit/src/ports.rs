//! Free loopback ports for test nodes, Redis servers and benchmark clusters.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port the OS reports free on 127.0.0.1 for TCP and for UDP (gossip listens on UDP), never
/// the same one twice in this process. Another process could still take it before it is
/// bound, which is unlikely on a test machine.
///
/// # Panics
///
/// When no ephemeral port can be bound on 127.0.0.1 at all.
pub fn free_port() -> u16 {
    let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = tcp.local_addr().expect("a bound port").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && seen.insert(port) {
            return port;
        }
    }
}

/// Panics, saying `when`, unless every TCP address of `tcp` and UDP address of `udp` can be
/// bound right now: what a stopped (or failed) node must have released.
pub fn assert_released(tcp: &[std::net::SocketAddr], udp: &[std::net::SocketAddr], when: &str) {
    for addr in tcp {
        if let Err(e) = TcpListener::bind(addr) {
            panic!("{when}: TCP {addr} is still bound: {e}");
        }
    }
    for addr in udp {
        if let Err(e) = UdpSocket::bind(addr) {
            panic!("{when}: UDP {addr} is still bound: {e}");
        }
    }
}
