//! What a spear carries: its open connections, the messages it published for its clients and
//! the server API (in), and those it delivered to its clients (out). Message counts are totals
//! since start; readers derive rates.

use std::sync::atomic::{AtomicU64, Ordering};

/// A spear's counters, shared by the socket.io edge (connections), the publisher (in) and the
/// socket.io outlet (out).
#[derive(Debug, Default)]
pub struct SpearCounters {
    connections: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CountersReport {
    /// Open socket.io connections (authenticated or not).
    pub connections: u64,
    /// Messages this spear published (its clients' sends and server API publishes), whether
    /// the relay took them or not.
    pub messages_in: u64,
    /// Messages this spear delivered to its clients: one per message per local channel (a
    /// group message counts once on this spear however many members it has here).
    pub messages_out: u64,
}

impl SpearCounters {
    /// A connection opened.
    pub fn opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open connections now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// One message published here.
    pub fn published(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// One message delivered to this spear's clients.
    pub fn delivered(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn report(&self) -> CountersReport {
        CountersReport {
            connections: self.connections(),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_way() {
        let c = SpearCounters::default();
        c.opened();
        c.opened();
        c.closed();
        c.published();
        c.delivered();
        c.delivered();
        assert_eq!(
            c.report(),
            CountersReport {
                connections: 1,
                messages_in: 1,
                messages_out: 2
            }
        );
    }
}
