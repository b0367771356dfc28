//! Control-plane scenarios against real `gru` processes (see `gru-testkit`).

mod add_core;
mod bootstrap;
mod config_errors;
mod dev_mode;
mod durability;
mod failover_leader_kill;
mod in_process;
mod join_spears;
mod leader_stop;
mod paused_core;
mod start_failure;
mod ticket_api;

/// Every cluster here runs the `gru` cargo built for these tests (`crate::gru()`).
use gru_testkit::gru;
