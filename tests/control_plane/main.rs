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
mod start_failure;
mod ticket_api;

/// The `gru` binary cargo built for these tests: every cluster here runs it.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
