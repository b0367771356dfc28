//! The processes `gru-bench relay` runs for one target: a private `redis-server`, and either
//! two `gru run` spears (node 1 also core, ticket and stat) with the Redis relay, the same two
//! spears with the RocketMQ relay and a RocketMQ name server and broker (routes in Redis,
//! messages through the broker), or two `node server.js` peers. The CPU time of all of them
//! is the system's cost. Ports, Redis, RocketMQ and child processes come from the test kit;
//! every child is killed when its guard drops, so an error or Ctrl-C leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru_testkit::ports::free_port;
use gru_testkit::redis::RedisServer;
use gru_testkit::rocketmq::RocketMq;
use gru_testkit::{GruBin, KillOnDrop};

/// The secrets of the benchmark cluster; they never leave this machine's temp directory.
pub(crate) const SPEAR_SECRET: &str = "bench-spear-secret-0123456789abc";
/// The server-API key of the benchmark cluster (`gru-bench publish`).
pub(crate) const API_KEY: &str = "bench-server-api-key-0123456789abcdef";
/// The business secret the config requires; the benchmark mints no token1.
pub(crate) const BUSINESS_SECRET: &str = "bench-business-secret-0123456789";

/// A private Redis in `dir`: no persistence, loopback only.
pub(crate) fn start_redis(dir: &Path) -> Result<RedisServer> {
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
/// B" the receivers), Redis between them, and RocketMQ when gru relays through it.
pub(crate) struct Servers {
    /// Spear A's socket.io address.
    pub(super) a: String,
    /// Spear A's HTTP address (gru only: the server API of `gru-bench publish`).
    pub(crate) a_http: Option<std::net::SocketAddr>,
    /// Spear B's socket.io address.
    pub(crate) b: String,
    /// Spear A and spear B; killed on drop.
    servers: [KillOnDrop; 2],
    /// Their logs, in the same order.
    logs: [PathBuf; 2],
    /// The Redis between them; killed on drop.
    redis: RedisServer,
    /// The RocketMQ name server and broker of gru's RocketMQ relay; killed on drop.
    rocketmq: Option<RocketMq>,
}

impl Servers {
    /// The pids whose CPU time is counted, the system's cost: spear A, spear B, Redis, then
    /// the RocketMQ broker and name server when there are.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.servers.iter().map(KillOnDrop::pid).collect();
        pids.extend(self.redis.pid());
        if let Some(mq) = &self.rocketmq {
            pids.extend(mq.broker_pid());
            pids.extend(mq.namesrv_pid());
        }
        pids
    }

    /// Fails when any server has exited; the error is one line (it lands in the report's
    /// table) and names the log to read.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        for (server, log) in self.servers.iter_mut().zip(&self.logs) {
            if let Err(e) = server.check_alive() {
                bail!("{e} (see {})", log.display());
            }
        }
        if !self.redis.is_running() {
            bail!(
                "redis-server exited early (see {})",
                self.redis.log_path().display()
            );
        }
        if let Some(mq) = &self.rocketmq {
            if !mq.broker_pid().is_some_and(running) {
                // Its files go with it on drop: its last words go to the terminal.
                eprintln!("--- RocketMQ broker log ---\n{}", mq.broker_log(30));
                bail!("the RocketMQ broker exited early");
            }
            if !mq.namesrv_pid().is_some_and(running) {
                bail!("the RocketMQ name server exited early");
            }
        }
        Ok(())
    }

    /// Like [`Servers::check_alive`], for a start: a server that exited is reported with the
    /// end of its log, which says why (a config gru refuses, say).
    fn check_started(&mut self) -> Result<()> {
        for (server, log) in self.servers.iter_mut().zip(&self.logs) {
            if let Err(e) = server.check_alive() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                bail!(
                    "{e} while starting; the end of its log ({}):\n{}",
                    log.display(),
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
        }
        self.check_alive()
    }
}

/// Whether process `pid` runs: it exists and is no zombie (a child that exited but that its
/// guard has not reaped yet).
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
    })
}

/// What carries gru's messages between its spears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GruRelay {
    /// Redis pub/sub (`relay.kind = "redis"`).
    Redis,
    /// A RocketMQ broker, routes in Redis (`relay.kind = "rocketmq"`).
    RocketMq,
}

/// What a benchmark turns off in gru to measure its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Toggles {
    /// `history.enabled`.
    pub(crate) history: bool,
    /// `metrics.enabled`.
    pub(crate) metrics: bool,
    /// `spear.websocket`: `"gru"` or `"socketioxide"` (set through the environment).
    pub(crate) websocket: &'static str,
}

impl Toggles {
    /// The config sections that turn off what is off.
    fn toml(self) -> String {
        let mut toml = String::new();
        if !self.history {
            toml.push_str(
                "# Measured without history (the cost of durability).\n[history]\nenabled = false\n",
            );
        }
        if !self.metrics {
            toml.push_str("# Measured without metrics (their cost).\n[metrics]\nenabled = false\n");
        }
        toml
    }
}

/// The gru side: Redis (plus a RocketMQ name server and broker for [`GruRelay::RocketMq`])
/// and two `gru run` processes relaying through `relay`. Node 1 is core, spear, ticket and stat and takes the
/// receivers (spear B); node 2 is only a spear and takes the senders (spear A), so every
/// message id comes from the Raft leader over gRPC, the way a spear gets its ids in a real
/// deployment. Returns once node 1's cluster view lists two spears; fails at once, with the
/// end of its log, when a node exits first.
pub(crate) async fn start_gru(
    dir: &Path,
    gru_bin: &GruBin,
    relay: GruRelay,
    idgen: &str,
    worker_threads: usize,
    toggles: Toggles,
) -> Result<Servers> {
    /// How long the two spears may take to register.
    const START_DEADLINE: Duration = Duration::from_secs(60);
    let node = || NodePorts {
        grpc: free_port(),
        http: free_port(),
        gossip: free_port(),
        sio: free_port(),
    };
    let (n1, n2) = (node(), node());
    let redis = start_redis(dir)?;
    let rocketmq = match relay {
        GruRelay::Redis => None,
        GruRelay::RocketMq => Some(start_rocketmq().await?),
    };
    let relay_conf = match &rocketmq {
        None => RelayConf::Redis,
        Some(mq) => RelayConf::RocketMq {
            name_server: mq.name_server(),
        },
    };
    let config = dir.join("cluster.toml");
    std::fs::write(
        &config,
        cluster_toml(dir, redis.port(), &relay_conf, idgen, &n1, &n2) + &toggles.toml(),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    crate::gru_node::make_certs(&config, &[1, 2])?;
    let log = |id: u64| dir.join(format!("node{id}.log"));
    let spawn = |id: u64| {
        let mut cmd = crate::gru_node::command(gru_bin, &config, id, worker_threads);
        cmd.env("GRU_SPEAR__WEBSOCKET", toggles.websocket);
        KillOnDrop::spawn(&format!("gru node {id}"), &mut cmd, &log(id))
    };
    let (node1, node2) = (spawn(1)?, spawn(2)?);
    // Spear A (node 2), spear B (node 1), Redis, RocketMQ: the order of every CPU split.
    let mut servers = Servers {
        a: format!("127.0.0.1:{}", n2.sio),
        a_http: Some(std::net::SocketAddr::from(([127, 0, 0, 1], n2.http))),
        b: format!("127.0.0.1:{}", n1.sio),
        servers: [node2, node1],
        logs: [log(2), log(1)],
        redis,
        rocketmq,
    };
    let url = format!("http://127.0.0.1:{}/api/v1/cluster", n1.http);
    let http = reqwest::Client::new();
    let start = Instant::now();
    while crate::gru_node::spear_count(&http, &url).await != Some(2) {
        servers.check_started()?;
        if start.elapsed() > START_DEADLINE {
            bail!(
                "the two gru spears did not register within {START_DEADLINE:?} (see {} and {})",
                servers.logs[1].display(),
                servers.logs[0].display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    servers.check_alive()?;
    Ok(servers)
}

/// A RocketMQ name server and broker from the test kit, started off the async runtime: the
/// kit waits for them in blocking sleeps.
async fn start_rocketmq() -> Result<RocketMq> {
    tokio::task::spawn_blocking(RocketMq::start)
        .await
        .context("the task starting RocketMQ failed")?
        .context("starting the benchmark's RocketMQ name server and broker")
}

/// The `[relay]` of the benchmark cluster's config and what it needs besides Redis.
enum RelayConf {
    /// `relay.kind = "redis"`.
    Redis,
    /// `relay.kind = "rocketmq"` through the name server at `name_server`.
    RocketMq {
        /// `host:port`.
        name_server: String,
    },
}

impl RelayConf {
    /// The config's `[relay]` section, and `[rocketmq]` when it relays through RocketMQ
    /// (gru's default queues and send timeout).
    fn toml(&self) -> String {
        match self {
            RelayConf::Redis => "[relay]\nkind = \"redis\"\n\n".into(),
            RelayConf::RocketMq { name_server } => format!(
                "# Messages go through the RocketMQ broker; the routes (which spears hold a user\n\
                 # or a group) are in Redis.\n\
                 [relay]\nkind = \"rocketmq\"\n\n[rocketmq]\nname_server = \"{name_server}\"\n\n"
            ),
        }
    }
}

/// The benchmark cluster's config: node 1 core, spear, ticket and stat, node 2 spear, the
/// relay of `relay` with the private Redis, no per-connection message limit to speak of.
fn cluster_toml(
    dir: &Path,
    redis: u16,
    relay: &RelayConf,
    idgen: &str,
    n1: &NodePorts,
    n2: &NodePorts,
) -> String {
    let node = |id: u64, roles: &str, p: &NodePorts| {
        format!(
            "[[nodes]]\nid = {id}\nroles = {roles}\ndata_dir = {data:?}\n[nodes.listen]\n\
             grpc = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\ngossip = \"127.0.0.1:{}\"\n\
             sio = \"127.0.0.1:{}\"\n{}\n",
            p.grpc,
            p.http,
            p.gossip,
            p.sio,
            crate::gru_node::shared_surfaces_toml(p.http, true),
            data = dir.join(format!("data{id}")).display().to_string(),
        )
    };
    format!(
        "# Written by `gru-bench relay`.\n[cluster]\nname = \"bench\"\n\n\
         # The benchmark's senders send far more than a person would, and every one of its\n\
         # clients comes from 127.0.0.1.\n\
         [spear]\nmax_msgs_per_sec = 1000000\nmax_connections_per_ip = 0\n\
         max_new_channels_per_min = 100000\nmax_history_bytes_per_min = 1073741824\n\n\
         [http]\nmax_connections_per_ip = 0\n\n[server_api]\nmessages_per_sec = 0\n\n\
         [idgen]\nmode = \"{idgen}\"\n\n{}[redis]\nurl = \"redis://127.0.0.1:{redis}\"\n\n\
         [auth]\nbusiness_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n\
         {}[[auth.api_keys]]\nname = \"bench\"\nsecret = \"{API_KEY}\"\n\n{}{}",
        relay.toml(),
        crate::gru_node::admin_key_toml(),
        node(1, r#"["core", "spear", "ticket", "stat"]"#, n1),
        node(2, r#"["spear"]"#, n2),
    )
}

/// The peer side: Redis and two `node server.js` processes (socket.io with the Redis
/// adapter). Installs the peer's packages first if needed (`npm ci`, from the lockfile) and
/// returns once both servers print that they listen (after their Redis clients connected).
pub(super) async fn start_peer(dir: &Path, peer_dir: &Path) -> Result<Servers> {
    let script = install_peer(peer_dir)?;
    let redis = start_redis(dir)?;
    let (port_a, port_b) = (free_port(), free_port());
    let log = |name: &str| dir.join(format!("peer-{name}.log"));
    let a = start_peer_server(&script, "a", port_a, &redis.url(), &log("a"), None).await?;
    let b = start_peer_server(&script, "b", port_b, &redis.url(), &log("b"), None).await?;
    Ok(Servers {
        a: format!("127.0.0.1:{port_a}"),
        a_http: None,
        b: format!("127.0.0.1:{port_b}"),
        servers: [a, b],
        logs: [log("a"), log("b")],
        redis,
        rocketmq: None,
    })
}

/// The peer's script in `peer_dir`, its packages installed first if needed (`npm ci`, from
/// the lockfile).
pub(crate) fn install_peer(peer_dir: &Path) -> Result<PathBuf> {
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
    Ok(script)
}

/// Starts `node <script> <port> <redis_url>` as peer server `name`, its output to `log`, and
/// returns once it prints that it listens. With `verify_as`, the server is that spear node
/// id and checks every handshake token's signature with [`SPEAR_SECRET`] the way gru does
/// (`node <script> <port> <redis_url> <id>`, the secret in `GRU_PEER_SPEAR_SECRET`);
/// without, it takes the user id from the handshake as given.
pub(crate) async fn start_peer_server(
    script: &Path,
    name: &str,
    port: u16,
    redis_url: &str,
    log: &Path,
    verify_as: Option<u64>,
) -> Result<KillOnDrop> {
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(port.to_string()).arg(redis_url);
    if let Some(id) = verify_as {
        cmd.arg(id.to_string())
            .env("GRU_PEER_SPEAR_SECRET", SPEAR_SECRET);
    }
    let mut server = KillOnDrop::spawn(&format!("peer server {name}"), &mut cmd, log)?;
    let start = Instant::now();
    // The script prints this once its Redis clients are connected.
    let ready = format!("listening {port}");
    while !std::fs::read_to_string(log).is_ok_and(|l| l.contains(&ready)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use gru::config::{ClusterConfig, RelayKind};

    fn ports() -> NodePorts {
        NodePorts {
            grpc: free_port(),
            http: free_port(),
            gossip: free_port(),
            sio: free_port(),
        }
    }

    fn parse(relay: &RelayConf) -> Result<ClusterConfig, gru::config::ConfigError> {
        let text = cluster_toml(
            Path::new("/tmp/bench"),
            6379,
            relay,
            "strict",
            &ports(),
            &ports(),
        );
        ClusterConfig::from_toml_str(&text, Vec::new())
    }

    #[test]
    fn the_redis_config_is_valid() {
        let config = parse(&RelayConf::Redis).expect("gru takes the Redis config");
        assert_eq!(config.relay.kind, RelayKind::Redis);
        assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(config.nodes.len(), 2);
    }

    #[test]
    fn the_toggles_turn_history_and_metrics_off() {
        let off = Toggles {
            history: false,
            metrics: false,
            websocket: "gru",
        };
        let text = cluster_toml(
            Path::new("/tmp/bench"),
            6379,
            &RelayConf::Redis,
            "strict",
            &ports(),
            &ports(),
        ) + &off.toml();
        let config = ClusterConfig::from_toml_str(&text, Vec::new()).expect("valid");
        assert!(!config.history.enabled && !config.metrics.enabled);
        let on = parse(&RelayConf::Redis).expect("valid");
        assert!(on.history.enabled && on.metrics.enabled);
    }

    #[test]
    fn the_rocketmq_config_is_valid_or_names_the_feature() {
        let relay = RelayConf::RocketMq {
            name_server: "127.0.0.1:9999".into(),
        };
        // This test's gru library has the feature only when the build unified it in.
        match parse(&relay) {
            Ok(config) => {
                assert_eq!(config.relay.kind, RelayKind::RocketMq);
                assert_eq!(config.rocketmq.name_server, "127.0.0.1:9999");
                assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
            }
            Err(e) => assert!(e.to_string().contains("--features rocketmq"), "{e}"),
        }
    }
}
