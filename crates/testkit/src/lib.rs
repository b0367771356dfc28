//! gru's test kit: what the integration tests (`tests/`) and the benchmarks (`gru-bench`) run
//! gru with.
//!
//! - [`TestCluster`] (`cluster.rs`): real `gru` processes from a generated `cluster.toml` —
//!   start / kill -9 / stop / restart / partition a node, cluster views over HTTP, a
//!   control-plane client; logs kept and printed when a test fails. [`ClusterBuilder`]
//!   (`builder.rs`, [`TestCluster::builder`]) describes one node by node and launches it.
//! - [`GruBin`]: which `gru` binary those processes run; [`gru()`]: the one cargo built for
//!   gru's own tests.
//! - [`tokens`], [`tickets`]: tokens signed with the harness's secrets, and a client's way in
//!   through ticket and `auth`; [`e2e`]: the Node end-to-end tests of `tests/e2e`.
//! - [`redis`]: real `redis-server` processes (one, or a Redis Cluster of masters).
//! - [`ports`]: free loopback ports; [`KillOnDrop`]: child processes killed and reaped on drop
//!   ([`rss_kib`]: a process's memory); [`wait`]: polling with deadlines instead of sleeps.
//! - [`sio`]: one small socket.io client, lean enough for benchmarks and able to misbehave
//!   the way hostile clients do for tests.
//! - [`proxy`]: a fault-injecting TCP proxy; [`history`]: the id history checker;
//!   [`delivery`]: the delivery checker (exactly once, in channel order, resyncs justified).
//!
//! Helpers meant only for tests panic with a message instead of returning errors; what the
//! benchmarks use as well (ports, processes, Redis, the socket.io connection) returns typed
//! errors.

#![warn(unreachable_pub, missing_docs)]

mod builder;
mod cluster;
pub mod delivery;
pub mod e2e;
mod gru_bin;
pub mod history;
pub mod ports;
mod process;
pub mod proxy;
pub mod redis;
pub mod rocketmq;
pub mod sio;
pub mod tickets;
pub mod tokens;
pub mod wait;

pub use builder::ClusterBuilder;
pub use cluster::{
    admin_http, ClusterOptions, Frozen, NodeSpec, Ports, RedisTarget, TestCluster, ADMIN_KEY,
    API_KEY, API_KEY_NAME, BUSINESS_SECRET, CORES, LEASE_TTL_MS, READ_KEY, SPEAR_SECRET,
};
pub use gru_bin::{gru, GruBin, GruBinError};
pub use process::{peak_rss_kib, rss_kib, KillOnDrop, ProcessError};
pub use wait::wait_for;
