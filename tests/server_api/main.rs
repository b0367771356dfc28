//! The server API that business servers call (`docs/api.md`, "Server API"): publish to a user,
//! a group, a list and in batches, across spears and idempotently (`publish.rs`); API keys
//! missing, wrong, scoped and rotated without a restart (`auth.rs`); a user's connections on
//! every spear listed and closed (`disconnect.rs`).

#[path = "../spear/support.rs"]
#[allow(dead_code)]
mod support;

mod auth;
mod common;
mod disconnect;
mod publish;

/// The `gru` binary cargo built for these tests.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
