//! The processes `gru-bench relay` runs: a private `redis-server`, and either two `gru run`
//! spears (node 1 also core, ticket and stat) or two `node server.js` peers. Ports, Redis and
//! child processes come from the test kit; every child is killed when its guard drops, so an
//! error or Ctrl-C leaves nothing running.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru_testkit::ports::free_port;
use gru_testkit::redis::RedisServer;
use gru_testkit::{wait, GruBin, KillOnDrop};

/// The secrets of the benchmark cluster; they never leave this machine's temp directory.
pub(super) const SPEAR_SECRET: &str = "bench-spear-secret-0123456789abc";
/// The business secret the config requires; the benchmark mints no token1.
const BUSINESS_SECRET: &str = "bench-business-secret-0123456789";

/// A private Redis in `dir`: no persistence, loopback only.
fn start_redis(dir: &Path) -> Result<RedisServer> {
    RedisServer::start_at(dir).context("starting the benchmark's redis-server")
}

/// The ports of one node of the benchmark cluster (all on 127.0.0.1).
struct NodePorts {
    /// Internal gRPC.
    grpc: u16,
    /// HTTP API.
    http: u16,
    /// Gossip (UDP).
    gossip: u16,
    /// socket.io.
    sio: u16,
}

/// A running system under test: two socket.io servers ("spear A" takes the senders, "spear
/// B" the receivers) and Redis between them.
pub(super) struct Servers {
    /// Spear A's socket.io address.
    pub(super) a: String,
    /// Spear B's socket.io address.
    pub(super) b: String,
    /// Spear A and spear B; killed on drop.
    servers: [KillOnDrop; 2],
    /// The Redis between them; killed on drop.
    redis: RedisServer,
}

impl Servers {
    /// The pids whose CPU time is counted, the system's cost: spear A, spear B, Redis.
    pub(super) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.servers.iter().map(KillOnDrop::pid).collect();
        pids.extend(self.redis.pid());
        pids
    }

    /// Fails when any server has exited.
    pub(super) fn check_alive(&mut self) -> Result<()> {
        for server in &mut self.servers {
            server.check_alive()?;
        }
        if !self.redis.is_running() {
            bail!(
                "redis-server exited early (see {})",
                self.redis.log_path().display()
            );
        }
        Ok(())
    }
}

/// The gru side: Redis and two `gru run` processes with the Redis relay. Node 1 is core,
/// spear, ticket and stat and takes the receivers (spear B); node 2 is only a spear and takes
/// the senders (spear A), so every message id comes from the Raft leader over gRPC, the way a
/// spear gets its ids in a real deployment. Returns once node 1's cluster view lists two
/// spears.
pub(super) async fn start_gru(
    dir: &Path,
    gru_bin: &GruBin,
    idgen: &str,
    worker_threads: usize,
) -> Result<Servers> {
    let node = || NodePorts {
        grpc: free_port(),
        http: free_port(),
        gossip: free_port(),
        sio: free_port(),
    };
    let (n1, n2) = (node(), node());
    let redis = start_redis(dir)?;
    let config = dir.join("cluster.toml");
    std::fs::write(&config, cluster_toml(dir, redis.port(), idgen, &n1, &n2))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let spawn = |id: u64| {
        let mut cmd = gru_bin.command();
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--node", &id.to_string()])
            .env("GRU_LOG", "warn")
            .env_remove("GRU_WORKER_THREADS");
        if worker_threads > 0 {
            cmd.args(["--worker-threads", &worker_threads.to_string()]);
        }
        let log = dir.join(format!("node{id}.log"));
        KillOnDrop::spawn(&format!("gru node {id}"), &mut cmd, &log)
    };
    let (node1, node2) = (spawn(1)?, spawn(2)?);
    // Spear A (node 2), spear B (node 1), Redis: the order of every CPU split.
    let mut servers = Servers {
        a: format!("127.0.0.1:{}", n2.sio),
        b: format!("127.0.0.1:{}", n1.sio),
        servers: [node2, node1],
        redis,
    };
    let url = format!("http://127.0.0.1:{}/api/v1/cluster", n1.http);
    let http = reqwest::Client::new();
    wait::poll(
        "both gru spears to register",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move { (spear_count(&http, &url).await == Some(2)).then_some(()) }
        },
    )
    .await?;
    servers.check_alive()?;
    Ok(servers)
}

/// How many spears node 1's cluster view lists.
async fn spear_count(http: &reqwest::Client, url: &str) -> Option<usize> {
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let view: serde_json::Value = resp.json().await.ok()?;
    view.get("spears")?.as_array().map(Vec::len)
}

/// The benchmark cluster's config: node 1 core, spear, ticket and stat, node 2 spear, the
/// Redis relay on the private Redis, no per-connection message limit to speak of.
fn cluster_toml(dir: &Path, redis: u16, idgen: &str, n1: &NodePorts, n2: &NodePorts) -> String {
    let node = |id: u64, roles: &str, p: &NodePorts| {
        format!(
            "[[nodes]]\nid = {id}\nroles = {roles}\ndata_dir = {data:?}\n[nodes.listen]\n\
             grpc = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\ngossip = \"127.0.0.1:{}\"\n\
             sio = \"127.0.0.1:{}\"\n\n",
            p.grpc,
            p.http,
            p.gossip,
            p.sio,
            data = dir.join(format!("data{id}")).display().to_string(),
        )
    };
    format!(
        "# Written by `gru-bench relay`.\n[cluster]\nname = \"bench\"\n\n\
         # The benchmark's senders send far more than a person would, and every one of its\n\
         # clients comes from 127.0.0.1.\n\
         [spear]\nmax_msgs_per_sec = 1000000\nmax_connections_per_ip = 0\n\n\
         [idgen]\nmode = \"{idgen}\"\n\n[relay]\nkind = \"redis\"\n\n[redis]\nurl = \"redis://127.0.0.1:{redis}\"\n\n\
         [auth]\nbusiness_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n\n{}{}",
        node(1, r#"["core", "spear", "ticket", "stat"]"#, n1),
        node(2, r#"["spear"]"#, n2),
    )
}

/// The peer side: Redis and two `node server.js` processes (socket.io with the Redis
/// adapter). Installs the peer's packages first if needed (`npm ci`, from the lockfile) and
/// returns once both servers print that they listen (after their Redis clients connected).
pub(super) async fn start_peer(dir: &Path, peer_dir: &Path) -> Result<Servers> {
    let script = peer_dir.join("server.js");
    if !script.is_file() {
        bail!(
            "{} not found: give --peer-dir (the crates/bench/peer directory of the repository)",
            script.display()
        );
    }
    if !peer_dir.join("node_modules").is_dir() {
        eprintln!("peer: npm ci in {}", peer_dir.display());
        let status = Command::new("npm")
            .arg("ci")
            .current_dir(peer_dir)
            .status()
            .context("cannot run npm (is Node.js installed?)")?;
        if !status.success() {
            bail!("npm ci in {} failed ({status})", peer_dir.display());
        }
    }
    let redis = start_redis(dir)?;
    let (port_a, port_b) = (free_port(), free_port());
    let a = start_peer_server(dir, &script, "a", port_a, &redis.url()).await?;
    let b = start_peer_server(dir, &script, "b", port_b, &redis.url()).await?;
    Ok(Servers {
        a: format!("127.0.0.1:{port_a}"),
        b: format!("127.0.0.1:{port_b}"),
        servers: [a, b],
        redis,
    })
}

/// Starts `node <script> <port> <redis_url>` as peer server `name` and returns once it prints
/// that it listens.
async fn start_peer_server(
    dir: &Path,
    script: &Path,
    name: &str,
    port: u16,
    redis_url: &str,
) -> Result<KillOnDrop> {
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(port.to_string()).arg(redis_url);
    let log = dir.join(format!("peer-{name}.log"));
    let mut server = KillOnDrop::spawn(&format!("peer server {name}"), &mut cmd, &log)?;
    let start = Instant::now();
    // The script prints this once its Redis clients are connected.
    let ready = format!("listening {port}");
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&ready)) {
        // A server that died (bad Redis URL, missing package) is reported at once.
        server
            .check_alive()
            .with_context(|| format!("see {}", log.display()))?;
        if start.elapsed() > Duration::from_secs(30) {
            bail!(
                "peer server {name} did not listen within 30 s (see {})",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}
