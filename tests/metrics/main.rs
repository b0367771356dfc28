//! The monitor's metrics and logs: every node's `/metrics` scraped and parsed strictly, with
//! the values a real cluster must show (`scrape.rs`); `[metrics] enabled = false` answering 404
//! (`scrape.rs`); every log line carrying the node id, as JSON with `--log-format json`
//! (`logs.rs`).

#[path = "../spear/support.rs"]
#[allow(dead_code)]
mod support;

mod exposition;
mod logs;
mod scrape;

/// The `gru` binary cargo built for these tests.
fn gru() -> gru_testkit::GruBin {
    gru_testkit::GruBin::at(env!("CARGO_BIN_EXE_gru"))
}
