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

/// The admin key of every benchmark cluster (`[[auth.admin_keys]]`).
pub(crate) const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef0123456789";

/// The gossip key of every benchmark cluster (`auth.gossip_keys`).
const GOSSIP_KEY: &str = "bench-gossip-key-0123456789abcdef012345678";

/// The end of a benchmark config's `[auth]` fields (its gossip key) and its
/// `[[auth.admin_keys]]` entry: after the section's plain fields, before any other key table.
pub(crate) fn admin_key_toml() -> String {
    format!(
        "gossip_keys = [\"{GOSSIP_KEY}\"]\n\n\
         [[auth.admin_keys]]\nname = \"bench\"\nsecret = \"{ADMIN_KEY}\"\n\n"
    )
}

/// The cluster CA and the certificates of nodes `ids` beside `config` (`certs/`, the default
/// `[cluster_tls] dir`), as `gru certs` makes them: the benchmark runs with mutual TLS on the
/// internal port, as a deployment does.
pub(crate) fn make_certs(config: &Path, ids: &[u64]) -> anyhow::Result<()> {
    let dir = config.parent().unwrap_or(Path::new(".")).join("certs");
    gru::net::tls::make_certs(&dir, ids, false)?;
    Ok(())
}

/// The `[nodes.listen]` lines that put a node's admin surface and, on a spear, its server API
/// on its loopback HTTP port, as `gru dev` does: a benchmark measures, it does not guard.
pub(crate) fn shared_surfaces_toml(http: u16, spear: bool) -> String {
    let mut lines = format!("admin = \"127.0.0.1:{http}\"\n");
    if spear {
        lines.push_str(&format!("server_api = \"127.0.0.1:{http}\"\n"));
    }
    lines
}

/// How many spears a node's cluster view (`GET /api/v1/cluster` at `url`, the admin surface)
/// lists; `None` while the node does not answer.
pub(crate) async fn spear_count(http: &reqwest::Client, url: &str) -> Option<usize> {
    let resp = http
        .get(url)
        .bearer_auth(ADMIN_KEY)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let view: serde_json::Value = resp.json().await.ok()?;
    view.get("spears")?.as_array().map(Vec::len)
}
