//! How a benchmark starts gru nodes and waits for its spears: the command line and the
//! cluster-view poll every benchmark that runs a cluster shares.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gru_testkit::GruBin;

/// `gru run --config <config> --node <id>` with warnings-only logs, and `worker_threads`
/// runtime threads (0: gru's default, one per CPU; the benchmark's own `GRU_WORKER_THREADS`
/// is not passed on).
pub(crate) fn command(gru_bin: &GruBin, config: &Path, id: u64, worker_threads: usize) -> Command {
    let mut cmd = gru_bin.command();
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .args(["--node", &id.to_string()])
        .env("GRU_LOG", "warn")
        .env_remove("GRU_WORKER_THREADS");
    if worker_threads > 0 {
        cmd.args(["--worker-threads", &worker_threads.to_string()]);
    }
    cmd
}

/// How many spears a node's cluster view (`GET /api/v1/cluster` at `url`) lists; `None` while
/// the node does not answer.
pub(crate) async fn spear_count(http: &reqwest::Client, url: &str) -> Option<usize> {
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let view: serde_json::Value = resp.json().await.ok()?;
    view.get("spears")?.as_array().map(Vec::len)
}
