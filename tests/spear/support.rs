//! What `tests/operator` still includes by `#[path]`: the shared steps live in the test kit now
//! (`gru_testkit::tokens`, `gru_testkit::tickets`, `gru_testkit::e2e`). Goes once
//! `tests/operator` imports them from there.

pub use gru_testkit::tickets::ticket;
pub use gru_testkit::tokens::spear_token;
