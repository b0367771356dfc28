//! The processes `gru bench relay` runs: a private `redis-server`, and either two `gru run`
//! spears (node 1 also core, ticket and stat) or two `node server.js` peers. Every child is
//! killed when its guard drops, so an error or Ctrl-C leaves nothing running.

use std::fs::File;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The secrets of the benchmark cluster; they never leave this machine's temp directory.
pub(super) const SPEAR_SECRET: &str = "bench-spear-secret-0123456789abc";
/// The business secret the config requires; the benchmark mints no token1.
const BUSINESS_SECRET: &str = "bench-business-secret-0123456789";

/// A directory under the system temp dir, removed on drop unless [`Scratch::keep`] was
/// called (a failed run keeps its logs).
pub(super) struct Scratch {
    /// The directory.
    path: PathBuf,
    /// Left in place on drop.
    keep: bool,
}

impl Scratch {
    /// Creates `gru-bench-relay-<pid>-<label>`.
    pub(super) fn new(label: &str) -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("gru-bench-relay-{}-{label}", std::process::id()));
        // A leftover of an earlier run with the same pid would mix logs.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place (its logs explain a failure).
    pub(super) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Scratch {
    /// Removes the directory unless it was kept.
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process, killed and reaped on drop.
pub(super) struct Proc {
    /// What the process is, for errors.
    name: String,
    /// The process.
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub(super) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    /// The process id (its CPU time is read from /proc).
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has already exited.
    pub(super) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    /// Kills and reaps the process.
    fn drop(&mut self) {
        // SIGKILL: the benchmark's servers keep nothing worth a graceful stop, and a stop
        // that hangs would keep the benchmark from reporting.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` distinct free 127.0.0.1 ports, free for TCP and UDP (gossip uses UDP). All are held
/// until every one is chosen, so they are distinct; another process could still take one
/// before the server binds it, which is unlikely on this machine.
pub(super) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let tcp = TcpListener::bind("127.0.0.1:0").context("no free port")?;
        let port = tcp.local_addr()?.port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push((tcp, Some(udp)));
        } else {
            held.push((tcp, None));
        }
    }
    Ok(ports)
}

/// Polls `probe` every 50 ms until it returns true or `limit` passes.
pub(super) async fn wait_until<F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A private Redis: no persistence, loopback only.
pub(super) async fn start_redis(dir: &Path, port: u16) -> Result<Proc> {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir);
    let mut redis = Proc::spawn("redis-server", cmd, &dir.join("redis.log"))
        .context("is redis-server installed (apt-get install redis-server)?")?;
    wait_until(
        "redis-server to answer PING",
        Duration::from_secs(10),
        || {
            let ok = redis_ping(port);
            async move { ok }
        },
    )
    .await?;
    redis.check_alive()?;
    Ok(redis)
}

/// Sends `PING` in RESP and expects `+PONG`.
fn redis_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
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
    /// Spear A, spear B and Redis: their CPU time is the system's cost; killed on drop.
    pub(super) procs: Vec<Proc>,
}

impl Servers {
    /// The pids whose CPU time is counted.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Proc::pid).collect()
    }

    /// Fails when any server has exited.
    pub(super) fn check_alive(&mut self) -> Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_alive)
    }
}

/// The gru side: Redis and two `gru run` processes with the Redis relay. Node 1 is core,
/// spear, ticket and stat and takes the receivers (spear B); node 2 is only a spear and takes
/// the senders (spear A), so every message id comes from the Raft leader over gRPC, the way a
/// spear gets its ids in a real deployment. Returns once node 1's cluster view lists two
/// spears.
pub(super) async fn start_gru(
    dir: &Path,
    gru_bin: &Path,
    idgen: &str,
    worker_threads: usize,
) -> Result<Servers> {
    let ports = free_ports(9)?;
    let node = |i: usize| NodePorts {
        grpc: ports[1 + 4 * i],
        http: ports[2 + 4 * i],
        gossip: ports[3 + 4 * i],
        sio: ports[4 + 4 * i],
    };
    let (n1, n2) = (node(0), node(1));
    let redis = start_redis(dir, ports[0]).await?;
    let config = dir.join("cluster.toml");
    std::fs::write(&config, cluster_toml(dir, ports[0], idgen, &n1, &n2))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let mut procs = Vec::new();
    for id in [1, 2] {
        let mut cmd = Command::new(gru_bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--node", &id.to_string()])
            .env("GRU_LOG", "warn")
            .env_remove("GRU_WORKER_THREADS");
        if worker_threads > 0 {
            cmd.args(["--worker-threads", &worker_threads.to_string()]);
        }
        procs.push(Proc::spawn(
            &format!("gru node {id}"),
            cmd,
            &dir.join(format!("node{id}.log")),
        )?);
    }
    // Spear A (node 2), spear B (node 1), Redis: the order of every CPU split.
    procs.reverse();
    procs.push(redis);
    let mut servers = Servers {
        a: format!("127.0.0.1:{}", n2.sio),
        b: format!("127.0.0.1:{}", n1.sio),
        procs,
    };
    let url = format!("http://127.0.0.1:{}/api/v1/cluster", n1.http);
    let http = reqwest::Client::new();
    wait_until(
        "both gru spears to register",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move { spear_count(&http, &url).await == Some(2) }
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
        "# Written by `gru bench relay`.\n[cluster]\nname = \"bench\"\n\n\
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
            "{} not found: give --peer-dir (the bench/peer directory of the repository)",
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
    let ports = free_ports(3)?;
    let redis = start_redis(dir, ports[0]).await?;
    let redis_url = format!("redis://127.0.0.1:{}", ports[0]);
    let mut procs = Vec::new();
    for (name, port) in [("a", ports[1]), ("b", ports[2])] {
        let mut cmd = Command::new("node");
        cmd.arg(&script).arg(port.to_string()).arg(&redis_url);
        let log = dir.join(format!("peer-{name}.log"));
        let mut server = Proc::spawn(&format!("peer server {name}"), cmd, &log)?;
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
        procs.push(server);
    }
    procs.push(redis);
    Ok(Servers {
        a: format!("127.0.0.1:{}", ports[1]),
        b: format!("127.0.0.1:{}", ports[2]),
        procs,
    })
}
