//! The processes a capacity run measures: a private `redis-server`, then for gru three core
//! nodes (core, ticket, stat: Raft, ids, presence readers) and K spear-only nodes relaying
//! through Redis, or for the peer K `node server.js` processes with the Redis adapter that
//! verify the same spear tokens. Every child is killed when its guard drops, so an error or
//! Ctrl-C leaves nothing running.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru_testkit::ports::free_port;
use gru_testkit::redis::RedisServer;
use gru_testkit::{GruBin, KillOnDrop};

use crate::relay::procs::{
    install_peer, start_peer_server, start_redis, BUSINESS_SECRET, SPEAR_SECRET,
};

/// The core nodes' ids; spears follow from [`FIRST_SPEAR`] on.
const CORES: [u64; 3] = [1, 2, 3];
/// The node id of spear index 0 (the peer's servers take the same ids, so tokens look alike).
pub(super) const FIRST_SPEAR: u64 = 4;
/// How long the spears may take to register.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// One server process: its guard, what it is, its log.
pub(super) struct Proc {
    /// `gru node 4`, `peer 4`, …
    pub(super) name: String,
    /// Node id (spears: what tokens list).
    pub(super) id: u64,
    /// socket.io address of a spear.
    pub(super) addr: Option<String>,
    guard: KillOnDrop,
    log: PathBuf,
}

impl Proc {
    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.guard.pid()
    }
}

/// A running system under test.
pub(super) struct Servers {
    /// The socket.io servers, by spear index.
    pub(super) spears: Vec<Proc>,
    /// What else the target needs (gru's core nodes).
    pub(super) others: Vec<Proc>,
    /// The Redis between the servers.
    pub(super) redis: RedisServer,
}

impl Servers {
    /// Every spear's socket.io address, by spear index.
    pub(super) fn addrs(&self) -> Vec<String> {
        self.spears
            .iter()
            .map(|p| p.addr.clone().unwrap_or_default())
            .collect()
    }

    /// Every spear's node id, by spear index.
    pub(super) fn spear_ids(&self) -> Vec<u64> {
        self.spears.iter().map(|p| p.id).collect()
    }

    /// Name and pid of everything besides the spears, Redis last.
    pub(super) fn support(&self) -> Vec<(String, u32)> {
        let mut all: Vec<(String, u32)> = self
            .others
            .iter()
            .map(|p| (p.name.clone(), p.pid()))
            .collect();
        all.extend(self.redis.pid().map(|pid| ("redis".to_string(), pid)));
        all
    }

    /// Fails when any server has exited, naming its log.
    pub(super) fn check_alive(&mut self) -> Result<()> {
        for p in self.spears.iter_mut().chain(self.others.iter_mut()) {
            if let Err(e) = p.guard.check_alive() {
                bail!("{e} (see {})", p.log.display());
            }
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

/// The ports of one gru node (all on 127.0.0.1).
struct NodePorts {
    grpc: u16,
    http: u16,
    gossip: u16,
    sio: Option<u16>,
}

/// How the gru cluster of a run is started.
pub(super) struct GruSetup<'a> {
    /// The binary.
    pub(super) bin: &'a GruBin,
    /// Spear nodes.
    pub(super) spears: u64,
    /// Runtime threads of each process.
    pub(super) worker_threads: usize,
    /// `spear.websocket`: `"gru"` or `"socketioxide"`.
    pub(super) websocket: &'static str,
}

/// gru: Redis, three core nodes, the setup's spear nodes. Returns once node 1's cluster view
/// lists every spear.
pub(super) async fn start_gru(dir: &Path, setup: GruSetup<'_>) -> Result<Servers> {
    let GruSetup {
        bin: gru_bin,
        spears,
        worker_threads,
        websocket,
    } = setup;
    let redis = start_redis(dir)?;
    let nodes: Vec<(u64, NodePorts)> = CORES
        .iter()
        .map(|id| (*id, None))
        .chain((0..spears).map(|k| (FIRST_SPEAR + k, Some(free_port()))))
        .map(|(id, sio)| {
            (
                id,
                NodePorts {
                    grpc: free_port(),
                    http: free_port(),
                    gossip: free_port(),
                    sio,
                },
            )
        })
        .collect();
    let config = dir.join("cluster.toml");
    std::fs::write(&config, cluster_toml(dir, redis.port(), &nodes))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let ids: Vec<u64> = nodes.iter().map(|(id, _)| *id).collect();
    crate::gru_node::make_certs(&config, &ids)?;
    let mut servers = Servers {
        spears: Vec::new(),
        others: Vec::new(),
        redis,
    };
    for (id, ports) in &nodes {
        let log = dir.join(format!("node{id}.log"));
        let mut cmd = crate::gru_node::command(gru_bin, &config, *id, worker_threads);
        cmd.env("GRU_SPEAR__WEBSOCKET", websocket);
        let name = format!("gru node {id}");
        let guard = KillOnDrop::spawn(&name, &mut cmd, &log)?;
        let proc = Proc {
            name,
            id: *id,
            addr: ports.sio.map(|p| format!("127.0.0.1:{p}")),
            guard,
            log,
        };
        if ports.sio.is_some() {
            servers.spears.push(proc);
        } else {
            servers.others.push(proc);
        }
    }
    let url = format!("http://127.0.0.1:{}/api/v1/cluster", nodes[0].1.http);
    let http = reqwest::Client::new();
    let start = Instant::now();
    while crate::gru_node::spear_count(&http, &url).await != Some(spears as usize) {
        servers.check_alive()?;
        if start.elapsed() > START_DEADLINE {
            bail!(
                "the {spears} gru spears did not register within {START_DEADLINE:?} (logs in {})",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(servers)
}

/// The capacity cluster's config: three core nodes (also ticket and stat), spear-only nodes
/// with the Redis relay, the private Redis, and the public ports' per-address limits lifted:
/// every client of the run comes from 127.0.0.x, a few hundred addresses for 100,000
/// sessions.
fn cluster_toml(dir: &Path, redis: u16, nodes: &[(u64, NodePorts)]) -> String {
    let mut toml = format!(
        "# Written by `gru-bench connections`.\n[cluster]\nname = \"capacity\"\n\n\
         # The clients come from a few loopback addresses; a slow open phase must not meet\n\
         # the authentication deadline.\n\
         [spear]\nmax_connections_per_ip = 0\nauth_timeout_ms = 300000\n\n\
         [http]\nmax_connections_per_ip = 0\n\n\
         [relay]\nkind = \"redis\"\n\n[redis]\nurl = \"redis://127.0.0.1:{redis}\"\n\n\
         [auth]\nbusiness_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n{}",
        crate::gru_node::admin_key_toml()
    );
    for (id, p) in nodes {
        let roles = if p.sio.is_some() {
            r#"["spear"]"#
        } else {
            r#"["core", "ticket", "stat"]"#
        };
        toml.push_str(&format!(
            "[[nodes]]\nid = {id}\nroles = {roles}\ndata_dir = {data:?}\n[nodes.listen]\n\
             grpc = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\ngossip = \"127.0.0.1:{}\"\n",
            p.grpc,
            p.http,
            p.gossip,
            data = dir.join(format!("data{id}")).display().to_string(),
        ));
        toml.push_str(&crate::gru_node::shared_surfaces_toml(
            p.http,
            p.sio.is_some(),
        ));
        if let Some(sio) = p.sio {
            toml.push_str(&format!("sio = \"127.0.0.1:{sio}\"\n"));
        }
        toml.push('\n');
    }
    toml
}

/// The peer: Redis and `spears` `node server.js` processes that verify spear tokens as spear
/// nodes 4, 5, ….
pub(super) async fn start_peer(dir: &Path, peer_dir: &Path, spears: u64) -> Result<Servers> {
    let script = install_peer(peer_dir)?;
    let redis = start_redis(dir)?;
    let mut servers = Servers {
        spears: Vec::new(),
        others: Vec::new(),
        redis,
    };
    for k in 0..spears {
        let id = FIRST_SPEAR + k;
        let port = free_port();
        let name = format!("peer {id}");
        let log = dir.join(format!("peer{id}.log"));
        let url = servers.redis.url();
        let guard = start_peer_server(&script, &name, port, &url, &log, Some(id)).await?;
        servers.spears.push(Proc {
            name,
            id,
            addr: Some(format!("127.0.0.1:{port}")),
            guard,
            log,
        });
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gru::config::{ClusterConfig, RelayKind};

    #[test]
    fn the_config_is_valid_with_three_cores_and_the_spears() {
        let nodes: Vec<(u64, NodePorts)> =
            [(1, None), (2, None), (3, None), (4, Some(9)), (5, Some(10))]
                .into_iter()
                .map(|(id, sio)| {
                    (
                        id,
                        NodePorts {
                            grpc: 100 + id as u16,
                            http: 200 + id as u16,
                            gossip: 300 + id as u16,
                            sio,
                        },
                    )
                })
                .collect();
        let text = cluster_toml(Path::new("/tmp/capacity"), 6379, &nodes);
        let config = ClusterConfig::from_toml_str(&text, Vec::new()).expect("gru takes it");
        assert_eq!(config.relay.kind, RelayKind::Redis);
        assert_eq!(config.nodes.len(), 5);
        assert_eq!(config.spear.max_connections_per_ip, 0);
        let spears: Vec<u64> = config
            .nodes
            .iter()
            .filter(|n| n.listen.sio.is_some())
            .map(|n| n.id)
            .collect();
        assert_eq!(spears, vec![4, 5]);
    }
}
