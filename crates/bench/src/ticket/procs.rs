//! The servers `gru-bench ticket` loads, each a child process killed when its guard drops (so
//! an error or Ctrl-C leaves nothing running): one `gru run` node with the roles core, spear
//! and ticket, or `gru-bench minimal-http`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru_testkit::ports::free_port;
use gru_testkit::{GruBin, KillOnDrop};

use crate::http_load::Request;

/// The secrets of the benchmark's node; they never leave this machine's temp directory.
pub(super) const BUSINESS_SECRET: &str = "bench-business-secret-0123456789";
/// The spear secret the config requires (gru signs the tickets' spear tokens with it).
const SPEAR_SECRET: &str = "bench-spear-secret-0123456789abc";
/// How long a server may take to be ready.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running server under test.
pub(super) struct Server {
    /// What it is, for messages.
    name: &'static str,
    /// Whether it is gru.
    gru: bool,
    /// Its HTTP address.
    addr: SocketAddr,
    /// The process; killed on drop.
    process: KillOnDrop,
    /// Its log.
    log: PathBuf,
}

impl Server {
    /// Whether it is gru (otherwise the minimal handler).
    pub(super) fn is_gru(&self) -> bool {
        self.gru
    }

    /// Its HTTP address.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub(super) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails, naming the log, when the process has exited.
    pub(super) fn check_alive(&mut self) -> Result<()> {
        if let Err(e) = self.process.check_alive() {
            bail!("{e} (see {})", self.log.display());
        }
        Ok(())
    }

    /// Like [`Server::check_alive`], for a start: the end of the log says why it exited.
    fn check_started(&mut self) -> Result<()> {
        if let Err(e) = self.process.check_alive() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            bail!(
                "{e} while starting; the end of its log ({}):\n{}",
                self.log.display(),
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
        Ok(())
    }

    /// Waits until `GET path` answers 200, failing when the process exits or the deadline
    /// passes.
    async fn wait_ready(&mut self, path: &str) -> Result<()> {
        let url = format!("http://{}{path}", self.addr);
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            let answer = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            self.check_started()?;
            if start.elapsed() > START_DEADLINE {
                bail!(
                    "{} did not answer GET {path} with 200 within {START_DEADLINE:?} (see {})",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: http://{}, pid {}, log {}",
            self.name,
            self.addr,
            self.pid(),
            self.log.display()
        )
    }
}

/// `--worker-threads` for a child, and no inherited `GRU_WORKER_THREADS`: `threads` or, for
/// 0, the child's own default.
fn threads_arg(cmd: &mut std::process::Command, threads: usize) {
    cmd.env_remove("GRU_WORKER_THREADS");
    if threads > 0 {
        cmd.args(["--worker-threads", &threads.to_string()]);
    }
}

/// Starts one gru node from a config in `dir` and returns once `probe` (a ticket request)
/// gets a 200: the spear has registered and ticket places users on it.
pub(super) async fn start_gru(
    dir: &Path,
    gru_bin: &GruBin,
    threads: usize,
    probe: &Request,
) -> Result<Server> {
    let ports = NodePorts {
        grpc: free_port(),
        http: free_port(),
        gossip: free_port(),
        sio: free_port(),
    };
    let config = dir.join("cluster.toml");
    std::fs::write(&config, cluster_toml(dir, &ports))
        .with_context(|| format!("cannot write {}", config.display()))?;
    crate::gru_node::make_certs(&config, &[1])?;
    let log = dir.join("gru.log");
    let mut cmd = gru_bin.command();
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--node", "1"])
        .env("GRU_LOG", "warn");
    threads_arg(&mut cmd, threads);
    let mut server = Server {
        name: "gru",
        gru: true,
        addr: SocketAddr::from(([127, 0, 0, 1], ports.http)),
        process: KillOnDrop::spawn("gru node 1", &mut cmd, &log)?,
        log,
    };
    server.wait_ready(&probe.path_and_query()).await?;
    Ok(server)
}

/// Starts `gru-bench minimal-http` (this executable) and returns once it answers.
pub(super) async fn start_minimal(dir: &Path, threads: usize) -> Result<Server> {
    let exe = std::env::current_exe().context("cannot tell where this executable is")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = dir.join("minimal-http.log");
    let mut cmd = std::process::Command::new(exe);
    threads_arg(&mut cmd, threads);
    cmd.args(["minimal-http", "--listen", &addr.to_string()])
        .env("GRU_LOG", "warn");
    let mut server = Server {
        name: "minimal axum",
        gru: false,
        addr,
        process: KillOnDrop::spawn("the minimal HTTP server", &mut cmd, &log)?,
        log,
    };
    server.wait_ready("/ticket").await?;
    Ok(server)
}

/// The ports of the benchmark's node (all on 127.0.0.1).
struct NodePorts {
    /// Internal gRPC.
    grpc: u16,
    /// HTTP API, where ticket answers.
    http: u16,
    /// Gossip (UDP).
    gossip: u16,
    /// socket.io, where tickets send clients.
    sio: u16,
}

/// The benchmark node's config: one node, core, spear and ticket, the local relay (no Redis),
/// and no per-address limits on the HTTP port: every request of the benchmark comes from
/// 127.0.0.1.
fn cluster_toml(dir: &Path, p: &NodePorts) -> String {
    format!(
        "# Written by `gru-bench ticket`.\n[cluster]\nname = \"bench-ticket\"\n\n\
         [relay]\nkind = \"local\"\n\n\
         # Every request of the benchmark comes from 127.0.0.1: no per-address limits.\n\
         [ticket]\nrequests_per_ip_per_sec = 0\n\n\
         [http]\nmax_connections_per_ip = 0\n\n\
         [auth]\nbusiness_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n{}\
         [[nodes]]\nid = 1\nroles = [\"core\", \"spear\", \"ticket\"]\ndata_dir = {data:?}\n\
         [nodes.listen]\ngrpc = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n\
         gossip = \"127.0.0.1:{}\"\nsio = \"127.0.0.1:{}\"\n{}",
        crate::gru_node::admin_key_toml(),
        p.grpc,
        p.http,
        p.gossip,
        p.sio,
        crate::gru_node::shared_surfaces_toml(p.http, true),
        data = dir.join("data").display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gru::config::{ClusterConfig, RelayKind};

    #[test]
    fn the_config_is_valid_and_lifts_the_ticket_limit() {
        let ports = NodePorts {
            grpc: 7000,
            http: 8080,
            gossip: 7946,
            sio: 31001,
        };
        let text = cluster_toml(Path::new("/tmp/bench"), &ports);
        let config = ClusterConfig::from_toml_str(&text, Vec::new()).expect("gru takes it");
        assert_eq!(config.ticket.requests_per_ip_per_sec, 0);
        assert_eq!(config.http.max_connections_per_ip, 0);
        assert_eq!(config.relay.kind, RelayKind::Local);
        assert_eq!(config.nodes.len(), 1);
        assert_eq!(config.auth.business_secret, BUSINESS_SECRET);
    }
}
