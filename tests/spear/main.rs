//! spear and ticket scenarios with real clients.

mod bad_input;
mod discovery;
mod group_access;
mod handshake_resume;
mod node_clients;
mod rust_client;
mod secret_rotation;
mod support;
mod transports;

/// The `gru` binary cargo built for these tests: every cluster here runs it.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
