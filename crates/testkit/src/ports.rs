//! Free loopback ports for test nodes, Redis servers and benchmark clusters.
//!
//! A port handed out stays reserved for the life of the process that took it, across
//! processes too: nextest runs every test in a process of its own, and a server that a test
//! stops and starts again on the same port (a broker, a Redis, a node) must find that port
//! still its own, not handed to another test's server in between.

use std::fs::{File, OpenOptions};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;

/// Test ports come from below the kernel's ephemeral range (32768–60999 by default): a port
/// from that range, found free and closed again, can become the source port of any outgoing
/// connection (a node's own connection to Redis or to another node) before the node binds it.
const FIRST: u16 = 15_000;
const COUNT: u16 = 32_768 - FIRST;

/// What this process has handed out: where it looks next (from a start that differs between
/// processes), and the lock on each port's file, which tells every other taker (another
/// process, or this one opening the file again) that the port is gone.
struct Reserved {
    cursor: u16,
    /// Held open (and locked) until the process exits: the kernel drops the locks then,
    /// also when the process is killed.
    locks: Vec<File>,
}

static RESERVED: Mutex<Option<Reserved>> = Mutex::new(None);

impl Reserved {
    fn get(state: &mut Option<Self>) -> &mut Self {
        state.get_or_insert_with(|| Self {
            cursor: random_start(),
            locks: Vec::new(),
        })
    }

    /// Takes `port` if no process (this one included) has taken it and it can be bound now.
    fn take(&mut self, port: u16) -> bool {
        let Some(lock) = lock_port(port) else {
            return false;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_err()
            || UdpSocket::bind(("127.0.0.1", port)).is_err()
        {
            // Held by something outside the test kit: leave the file unlocked (dropped).
            return false;
        }
        self.locks.push(lock);
        true
    }
}

/// The port's lock file, locked; `None` when it is locked already, by another process or by
/// this one through another open of the file (or it cannot be made, which then also means:
/// do not use the port).
fn lock_port(port: u16) -> Option<File> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    file.try_lock().ok().map(|()| file)
}

/// Shared by every process of this user on the machine (so by every test of a run).
fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("gru-test-ports")
}

/// A port that can be bound on 127.0.0.1 for TCP and for UDP (gossip listens on UDP) right now,
/// below the ephemeral range, and handed out by no other call, in this process or in any other
/// process using this test kit, for as long as this process lives. Something outside the test
/// kit could still bind it before its server does.
///
/// # Panics
///
/// When no port of the range can be taken.
pub fn free_port() -> u16 {
    let mut state = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    let reserved = Reserved::get(&mut state);
    for _ in 0..COUNT {
        let port = FIRST + reserved.cursor % COUNT;
        reserved.cursor = reserved.cursor.wrapping_add(1) % COUNT;
        if reserved.take(port) {
            return port;
        }
    }
    panic!(
        "no free port in {FIRST}..{}",
        u32::from(FIRST) + u32::from(COUNT)
    );
}

/// Hands out `port` itself if no process using this test kit has taken it and it can be bound
/// now (for a server that also listens on a port derived from its main one, as RocketMQ's
/// broker does on `listenPort - 2`).
pub fn claim_port(port: u16) -> bool {
    let mut state = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    Reserved::get(&mut state).take(port)
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
    use std::collections::HashSet;

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
        // Another process's lock on a port is a lock on another open file description of
        // its file, which conflicts with this process's the same way.
        assert!(
            lock_port(ports[1]).is_none(),
            "a port handed out is locked against every other taker"
        );
        let derived = ports[199] - 2;
        if !distinct.contains(&derived) {
            assert!(claim_port(derived) || TcpListener::bind(("127.0.0.1", derived)).is_err());
            assert!(!claim_port(derived), "claimed once");
        }
    }
}
