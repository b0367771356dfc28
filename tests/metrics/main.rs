//! The monitor's metrics and logs: every node's `/metrics` scraped and parsed strictly, with
//! the values a real cluster must show (`scrape.rs`); `[metrics] enabled = false` answering 404
//! (`scrape.rs`); every log line carrying the node id, as JSON with `--log-format json`
//! (`logs.rs`).

mod exposition;
mod logs;
mod scrape;
