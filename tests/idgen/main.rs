//! idgen scenarios against real `gru` processes (see `tests/common`).

#[path = "../common/mod.rs"]
mod common;

mod failover_leader_kill;
mod http_api;
mod partition;
mod stream;
mod unique_mode;
mod workload;
