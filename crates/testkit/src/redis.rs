//! Real `redis-server` processes for tests and benchmarks: a single server ([`RedisServer`])
//! or a cluster of masters ([`RedisCluster`], tests only), each on its own free loopback port
//! with its own directory and log file, without persistence. Every process is killed (kill -9)
//! and reaped when its struct drops, also while a test panics; then a temp dir is kept and the
//! log tail printed.
//!
//! `redis-server` and `redis-cli` must be on PATH (`.ci/run` installs them).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{tail, KillOnDrop, ProcessError};

/// How long a server may take to answer PING after it was spawned.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// How long a cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);
/// How to install what is missing.
const INSTALL: &str = ".ci/run installs it (Debian: apt-get install -y redis-server redis-tools)";

/// Why a Redis server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A program is not on PATH.
    #[error("`{name}` is needed on PATH ({source}); {INSTALL}")]
    Missing {
        /// The program.
        name: &'static str,
        /// Why it did not run.
        #[source]
        source: std::io::Error,
    },
    /// The temp dir could not be created.
    #[error("cannot create a temp dir for redis-server: {0}")]
    TempDir(#[source] std::io::Error),
    /// The process could not be started.
    #[error(transparent)]
    Spawn(#[from] ProcessError),
    /// The process exited before it answered.
    #[error("redis-server on port {port} exited before answering PING; log:\n{log}")]
    Exited {
        /// Its port.
        port: u16,
        /// The tail of its log.
        log: String,
    },
    /// The process did not answer in time (it was killed).
    #[error(
        "redis-server on port {port} did not answer PING within {READY_DEADLINE:?}; log:\n{log}"
    )]
    NotReady {
        /// Its port.
        port: u16,
        /// The tail of its log.
        log: String,
    },
}

fn require_binary(name: &'static str) -> Result<(), RedisError> {
    Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|source| RedisError::Missing { name, source })
}

/// One `redis-server` child process on `127.0.0.1:<port>`.
pub struct RedisServer {
    port: u16,
    /// Extra arguments (cluster mode) the process is started with, also on restart.
    extra: Vec<String>,
    /// The temp dir it owns, if it made one (kept when a test fails).
    dir: Option<tempfile::TempDir>,
    /// Where its data and `redis.log` go.
    root: PathBuf,
    process: Option<KillOnDrop>,
}

impl RedisServer {
    /// Starts a standalone server on a free port in a temp dir of its own and waits until it
    /// answers PING.
    pub fn start() -> Result<Self, RedisError> {
        Self::start_in("gru-redis-", |_, _| Vec::new())
    }

    /// Starts a standalone server on a free port with its files (`redis.log`) in `dir`, which
    /// the caller owns, and waits until it answers PING.
    pub fn start_at(dir: &Path) -> Result<Self, RedisError> {
        require_binary("redis-server")?;
        Self::launch(free_port(), Vec::new(), None, dir.to_path_buf())
    }

    /// A standalone server's arguments plus cluster mode, with a bus port of its own; the
    /// cluster config file is named after the port.
    fn start_cluster_node() -> Result<Self, RedisError> {
        Self::start_in("gru-redis-cluster-", |root, port| {
            vec![
                "--cluster-enabled".to_string(),
                "yes".to_string(),
                "--cluster-config-file".to_string(),
                root.join(format!("nodes-{port}.conf"))
                    .display()
                    .to_string(),
                "--cluster-node-timeout".to_string(),
                "2000".to_string(),
                // A port of its own for the cluster bus, not the default `port + 10000`,
                // which could be a port handed out to another server.
                "--cluster-port".to_string(),
                free_port().to_string(),
            ]
        })
    }

    /// Starts a server in a new temp dir named `prefix…`, with the extra arguments `extra`
    /// makes from that dir and the chosen port.
    fn start_in(
        prefix: &str,
        extra: impl FnOnce(&Path, u16) -> Vec<String>,
    ) -> Result<Self, RedisError> {
        require_binary("redis-server")?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(RedisError::TempDir)?;
        let root = dir.path().to_path_buf();
        let port = free_port();
        Self::launch(port, extra(&root, port), Some(dir), root)
    }

    fn launch(
        port: u16,
        extra: Vec<String>,
        dir: Option<tempfile::TempDir>,
        root: PathBuf,
    ) -> Result<Self, RedisError> {
        let mut server = Self {
            port,
            extra,
            dir,
            root,
            process: None,
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    fn spawn_and_wait(&mut self) -> Result<(), RedisError> {
        // Restart means empty data: drop what a previous run left (there is no persistence, but
        // a cluster node's config file would bring its old identity back).
        for name in [format!("nodes-{}.conf", self.port), "dump.rdb".into()] {
            let _ = std::fs::remove_file(self.root.join(name));
        }
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.root)
            .args(&self.extra);
        // Without `--logfile` the server logs to stdout, which goes to the log file.
        self.process = Some(KillOnDrop::spawn(
            "redis-server",
            &mut cmd,
            &self.log_path(),
        )?);
        let start = Instant::now();
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if !self.is_running() {
                return Err(RedisError::Exited {
                    port: self.port,
                    log: self.log_tail(30),
                });
            }
            if start.elapsed() > READY_DEADLINE {
                self.kill();
                return Err(RedisError::NotReady {
                    port: self.port,
                    log: self.log_tail(30),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(KillOnDrop::pid)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("redis.log")
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// kill -9 and reap (nothing when it is not running).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same port with empty data and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// When it does not come back (a test failure).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn_and_wait() {
            panic!("restarting redis: {e}");
        }
    }

    /// Whether the process is alive (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut().map(KillOnDrop::exited) {
            Some(None) => true,
            Some(Some(_)) => {
                self.process = None;
                false
            }
            None => false,
        }
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` and returns its output, or `None` when it
    /// could not run or exited non-zero.
    pub fn cmd(&self, args: &[&str]) -> Option<String> {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "test failed; redis (port {}) files kept in {}\n---- last lines of its log ----\n{}",
                    self.port,
                    kept.display(),
                    tail(&kept.join("redis.log"), 20)
                );
            }
        }
    }
}

/// A Redis Cluster of `masters` masters without replicas, each a [`RedisServer`].
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` cluster-enabled servers (at least 3, Redis's minimum), joins them with
    /// `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When the cluster does not form (a test failure).
    pub fn start(masters: usize) -> Self {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        if let Err(e) = require_binary("redis-cli") {
            panic!("{e}");
        }
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::start_cluster_node().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let cluster = Self { nodes };
        cluster.form();
        cluster
    }

    /// Joins the running, empty masters with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    fn form(&self) {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create {addrs:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let start = Instant::now();
        loop {
            let states: Vec<bool> = self
                .nodes
                .iter()
                .map(|n| {
                    n.cmd(&["CLUSTER", "INFO"])
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                })
                .collect();
            if states.iter().all(|ok| *ok) {
                return;
            }
            assert!(
                start.elapsed() < CLUSTER_DEADLINE,
                "redis cluster {addrs:?} not ok within {CLUSTER_DEADLINE:?} (ok per node: {states:?})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// kill -9 every master: the whole cluster is down.
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Starts every master again on its port, empty, and forms the cluster anew (the same
    /// ports in the same order get the same slots).
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            node.restart();
        }
        self.form();
    }

    /// The URL of the first master.
    pub fn seed_url(&self) -> String {
        self.nodes[0].url()
    }

    /// The masters' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Master `i` (to kill or query it).
    pub fn node(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// Runs `redis-cli -c` (following redirects) against the first master.
    pub fn cmd(&self, args: &[&str]) -> Option<String> {
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        cli(self.nodes[0].port(), &all)
    }
}

/// PING over a raw connection; true on `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"+PONG")
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
