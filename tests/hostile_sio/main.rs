//! A spear probed as an attacker and a bad mobile network would (issue "spears no client can
//! hurt"): binary attachments, clients that never read, never authenticate or keep a closed
//! session open, floods, a stop with stuck clients. Each scenario runs a real `gru` process and
//! checks what the server did (closed the connection, kept its memory, answered the others).

#[path = "../spear/support.rs"]
#[allow(dead_code)]
mod support;

mod binary;
mod deadlines;
mod history_flood;
mod limits;
mod node;
mod polling;
mod shutdown;
mod slow_consumer;

/// The `gru` binary cargo built for these tests: every cluster here runs it.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
