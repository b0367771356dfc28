//! One suite every relay backend runs, in the spirit of openraft's storage `Suite`: the checks
//! are generic over a [`Harness`] that starts the backend, makes the relay of spear N (with a
//! channel as its inbound sink and a real roster that it follows), and kills and restarts the
//! backend. Every backend runs every check, with several spears and an outage: `local` over an
//! in-memory bus it can cut ([`gru::services::relay::LocalBus`]), the others against real
//! servers. `backends.rs` has one harness per backend and the test of each:
//! `relay_conformance_local`, `relay_conformance_redis`, `relay_conformance_redis_cluster`
//! (and `relay_conformance_rocketmq` with the `rocketmq` feature).
//!
//! What the checks assert:
//!
//! - `order` — many messages to one user and to one group arrive in publish order;
//! - `targeting` — a spear receives only the channels it has recipients for, and stops when
//!   the last one leaves;
//! - `no_gap` — once a roster change's confirmation resolved, a publish from another spear is
//!   delivered (what an `auth` or `join` answered after it relies on);
//! - `echoes` — a spear never delivers its own message again: its echo is counted and skipped;
//! - `outage` — publishing while the backend is down fails with [`RelayError::Unavailable`]
//!   (socket.io code 1001), and delivery resumes by itself when it is back;
//! - `counters` — published, received, echoes and publish errors match what was done.

mod backends;
mod counters;
mod echoes;
mod no_gap;
mod order;
mod outage;
mod spear;
mod targeting;

use std::future::Future;
use std::time::Instant;

use gru::config::NodeId;
pub use gru::services::relay::RelayError;

pub use spear::TestSpear;

/// How a backend's transport behaves where backends may differ.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// A spear hears its own messages back and must skip them (Redis pub/sub: it is subscribed
    /// to the channel it publishes on). A backend that sends only to the other spears
    /// (RocketMQ) has no echoes to skip.
    pub hears_echoes: bool,
}

impl Caps {
    /// How many of `n` own messages a spear hears back: all of them, or none.
    pub fn echoes(&self, n: u64) -> u64 {
        if self.hears_echoes {
            n
        } else {
            0
        }
    }
}

/// Starts, breaks and mends one backend for the suite.
pub trait Harness {
    /// The backend's name in the output.
    fn name(&self) -> &'static str;
    /// What applies to it.
    fn caps(&self) -> Caps;
    /// `relay.kind` as the report shows it.
    fn kind(&self) -> &'static str;
    /// The relay of spear `id`, on the running backend, ready to subscribe.
    fn spear(&mut self, id: NodeId) -> impl Future<Output = TestSpear>;
    /// Stops the transport (kill -9; the in-memory bus is cut).
    fn kill(&mut self);
    /// Starts the transport again where it was (Redis: empty; a broker: with its store; the
    /// in-memory bus: with what it held).
    fn restart(&mut self);
}

/// Runs every check against `h`'s backend, in order; the outage last, so that the others run
/// against a backend that never failed.
pub async fn run_suite<H: Harness>(h: &mut H) {
    let name = h.name();
    let started = Instant::now();
    macro_rules! run {
        ($($check:ident),*) => {$(
            eprintln!("[{name}] {} …", stringify!($check));
            $check::check(h).await;
        )*};
    }
    run!(order, targeting, no_gap, echoes, counters, outage);
    eprintln!("[{name}] suite passed in {:?}", started.elapsed());
}
