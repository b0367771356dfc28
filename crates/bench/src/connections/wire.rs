//! What the orchestrator and its worker processes say to each other: one JSON object per
//! line, the orchestrator on the worker's stdin, the worker on its stdout. The first line is
//! the [`Setup`]; then every [`Command`] gets exactly one [`Reply`], in order.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::plan::Plan;

/// What a worker is, sent once as its first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Setup {
    /// This worker's index.
    pub(crate) worker: u64,
    /// The plan every process shares.
    pub(crate) plan: Plan,
    /// Each spear's socket.io address (`host:port`), by spear index.
    pub(crate) addrs: Vec<String>,
    /// Each spear's node id (what its tokens list), by spear index.
    pub(crate) spear_ids: Vec<u64>,
    /// The spear secret the tokens are signed with.
    pub(crate) secret: String,
    /// The addresses this worker connects from.
    pub(crate) sources: Vec<Ipv4Addr>,
    /// Sessions being opened at once.
    pub(crate) concurrency: usize,
    /// Share of messages sent to a user (the rest go to a group).
    pub(crate) unicast_share: f64,
}

/// What the orchestrator asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Command {
    /// Start opening this worker's sessions (answered at once; [`Stats::open_done`] says
    /// when they are open).
    Open,
    /// Start sending `rate` messages per second for `secs` seconds (answered at once;
    /// [`Stats::load_done`] says when the last went out).
    Load {
        /// Messages per second from this worker.
        rate: f64,
        /// How long.
        secs: f64,
    },
    /// Report the counters.
    Stats,
    /// Close every connection and exit (answered first).
    Close,
}

/// A worker's answer to a [`Command`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// The command was taken.
    Ok,
    /// The counters.
    Stats(Box<Stats>),
    /// The command could not be carried out.
    Error {
        /// Why.
        message: String,
    },
}

/// When one spear's sessions of one worker opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpearOpen {
    /// Sessions opened (connected, authenticated, joined).
    pub(crate) opened: u64,
    /// Unix ns when the first connect began (0: none).
    pub(crate) first_ns: u64,
    /// Unix ns when the last join was acknowledged (0: none).
    pub(crate) last_ns: u64,
}

impl SpearOpen {
    /// Both workers' sessions of one spear: counts add up, the window covers both.
    pub(crate) fn merge(&mut self, other: &SpearOpen) {
        self.opened += other.opened;
        self.first_ns = match (self.first_ns, other.first_ns) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_ns = self.last_ns.max(other.last_ns);
    }

    /// Sessions per second over the window (0 without one).
    pub(crate) fn rate(&self) -> f64 {
        let secs = self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9;
        if secs <= 0.0 {
            return 0.0;
        }
        self.opened as f64 / secs
    }
}

/// A worker's counters since it started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Stats {
    /// Sessions opened.
    pub(crate) opened: u64,
    /// Sessions that failed to open.
    pub(crate) failed: u64,
    /// The first failure, to say why.
    pub(crate) first_failure: Option<String>,
    /// Every session was tried.
    pub(crate) open_done: bool,
    /// Per spear index.
    pub(crate) spears: Vec<SpearOpen>,
    /// Time to open one session (connect to join acknowledged), histogram buckets (µs).
    pub(crate) open_latency: Vec<(u32, u64)>,
    /// `msg` events written.
    pub(crate) sent: u64,
    /// `msg` events that could not be written (their connection had closed).
    pub(crate) send_failures: u64,
    /// Acknowledged with success.
    pub(crate) acked: u64,
    /// Acknowledged with an error.
    pub(crate) ack_errors: u64,
    /// The first error acknowledgement.
    pub(crate) first_ack_error: Option<String>,
    /// Deliveries the sent messages must make (the plan's count per message).
    pub(crate) expected: u64,
    /// `msg` events received.
    pub(crate) received: u64,
    /// Send → receive latency, histogram buckets (µs).
    pub(crate) latency: Vec<(u32, u64)>,
    /// The largest latency, µs.
    pub(crate) max_latency_us: u64,
    /// Open sessions that were closed without being asked to.
    pub(crate) disconnects: u64,
    /// The first of those, to say why.
    pub(crate) first_disconnect: Option<String>,
    /// The last message of the load went out.
    pub(crate) load_done: bool,
}

impl Stats {
    /// Adds another worker's counters: counts add up, spear windows merge, histogram buckets
    /// are appended (adding them into one histogram sums equal buckets), firsts are kept.
    pub(crate) fn absorb(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.open_done &= other.open_done;
        if self.spears.len() < other.spears.len() {
            self.spears.resize(other.spears.len(), SpearOpen::default());
        }
        for (mine, theirs) in self.spears.iter_mut().zip(&other.spears) {
            mine.merge(theirs);
        }
        self.open_latency.extend_from_slice(&other.open_latency);
        self.sent += other.sent;
        self.send_failures += other.send_failures;
        self.acked += other.acked;
        self.ack_errors += other.ack_errors;
        self.expected += other.expected;
        self.received += other.received;
        self.latency.extend_from_slice(&other.latency);
        self.max_latency_us = self.max_latency_us.max(other.max_latency_us);
        self.disconnects += other.disconnects;
        self.load_done &= other.load_done;
        for (mine, theirs) in [
            (&mut self.first_failure, &other.first_failure),
            (&mut self.first_ack_error, &other.first_ack_error),
            (&mut self.first_disconnect, &other.first_disconnect),
        ] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
    }

    /// The sum of `all`.
    pub(crate) fn total(all: &[Stats]) -> Stats {
        let mut sum = Stats {
            open_done: true,
            load_done: true,
            ..Stats::default()
        };
        for s in all {
            sum.absorb(s);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_replies_are_one_line_of_json() {
        let line = serde_json::to_string(&Command::Load {
            rate: 500.0,
            secs: 60.0,
        })
        .expect("json");
        assert_eq!(line, r#"{"cmd":"load","rate":500.0,"secs":60.0}"#);
        let back: Command = serde_json::from_str(r#"{"cmd":"stats"}"#).expect("parses");
        assert!(matches!(back, Command::Stats));
        let reply = serde_json::to_string(&Reply::Stats(Box::default())).expect("json");
        assert!(!reply.contains('\n'));
        assert!(matches!(
            serde_json::from_str::<Reply>(&reply).expect("parses"),
            Reply::Stats(_)
        ));
    }

    #[test]
    fn spear_windows_merge() {
        let mut a = SpearOpen {
            opened: 100,
            first_ns: 2_000_000_000,
            last_ns: 3_000_000_000,
        };
        a.merge(&SpearOpen {
            opened: 100,
            first_ns: 1_000_000_000,
            last_ns: 2_000_000_000,
        });
        a.merge(&SpearOpen::default());
        let one = Stats {
            opened: 3,
            open_done: true,
            spears: vec![a],
            latency: vec![(5, 2)],
            first_failure: Some("x".into()),
            ..Stats::default()
        };
        let two = Stats {
            opened: 4,
            latency: vec![(5, 1)],
            max_latency_us: 9,
            ..Stats::default()
        };
        let sum = Stats::total(&[one, two]);
        assert_eq!((sum.opened, sum.max_latency_us), (7, 9));
        assert!(!sum.open_done && !sum.load_done);
        assert_eq!(sum.spears[0].opened, 200);
        assert_eq!(sum.latency, vec![(5, 2), (5, 1)]);
        assert_eq!(sum.first_failure.as_deref(), Some("x"));
        assert_eq!(a.opened, 200);
        assert!((a.rate() - 100.0).abs() < 1e-9);
        assert_eq!(SpearOpen::default().rate(), 0.0);
    }
}
