//! How a benchmark starts one gru node: the command line every benchmark that runs a cluster
//! shares.

use std::path::Path;
use std::process::Command;

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
