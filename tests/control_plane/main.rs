//! Control-plane scenarios against real `gru` processes (see `tests/common`).

#[path = "../common/mod.rs"]
mod common;

mod add_core;
mod bootstrap;
mod config_errors;
mod dev_mode;
mod durability;
mod failover_leader_kill;
mod in_process;
mod join_spears;
mod start_failure;
mod ticket_api;
