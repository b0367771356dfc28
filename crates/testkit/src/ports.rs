//! Free loopback ports for test nodes, Redis servers and benchmark clusters.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Test ports come from below the kernel's ephemeral range (32768–60999 by default): a port
/// from that range, found free and closed again, can become the source port of any outgoing
/// connection (a node's own connection to Redis or to another node) before the node binds it.
const FIRST: u16 = 15_000;
const COUNT: u16 = 32_768 - FIRST;

/// Where this process looks next (from a start that differs between processes), and what it
/// has handed out.
static CURSOR: Mutex<Option<(u16, HashSet<u16>)>> = Mutex::new(None);

/// A port that can be bound on 127.0.0.1 for TCP and for UDP (gossip listens on UDP) right now,
/// below the ephemeral range and never the same one twice in this process. Another test
/// process could still take it before it is bound; each process walks the range from its own
/// start, which makes that unlikely.
///
/// # Panics
///
/// When no port of the range can be bound.
pub fn free_port() -> u16 {
    let mut state = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let (cursor, seen) = state.get_or_insert_with(|| (random_start(), HashSet::new()));
    for _ in 0..COUNT {
        let port = FIRST + *cursor % COUNT;
        *cursor = cursor.wrapping_add(1) % COUNT;
        if seen.insert(port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!(
        "no free port in {FIRST}..{}",
        u32::from(FIRST) + u32::from(COUNT)
    );
}

/// Hands out `port` itself if this process has not handed it out yet and it can be bound now
/// (for a server that also listens on a port derived from its main one, as RocketMQ's broker
/// does on `listenPort - 2`).
pub fn claim_port(port: u16) -> bool {
    let mut state = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let (_, seen) = state.get_or_insert_with(|| (random_start(), HashSet::new()));
    !seen.contains(&port)
        && TcpListener::bind(("127.0.0.1", port)).is_ok()
        && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && seen.insert(port)
}

/// A start in the range that differs between processes (pid and clock).
fn random_start() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (u64::from(std::process::id()) << 32 | u64::from(nanos))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    u16::try_from((mixed >> 48) % u64::from(COUNT)).unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        for port in &ports {
            assert!((FIRST..32_768).contains(port), "{port}");
        }
        assert!(
            !claim_port(ports[0]),
            "a port handed out is not claimed again"
        );
        let derived = ports[199] - 2;
        if !distinct.contains(&derived) {
            assert!(claim_port(derived) || TcpListener::bind(("127.0.0.1", derived)).is_err());
            assert!(!claim_port(derived), "claimed once");
        }
    }
}
