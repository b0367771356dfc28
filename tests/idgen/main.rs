//! idgen scenarios against real `gru` processes (see `gru-testkit`).

#[path = "../spear/support.rs"]
#[allow(dead_code)]
mod support;

mod failover_leader_kill;
mod http_api;
mod ids_rate;
mod partition;
mod stream;
mod unique_mode;
mod workload;

/// The `gru` binary cargo built for these tests: every cluster here runs it.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
