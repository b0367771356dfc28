//! A real RocketMQ for tests and benchmarks: one name server and one broker (the Rust
//! implementation of Apache RocketMQ, `rocketmq-namesrv-rust` and `rocketmq-broker-rust`),
//! each on free loopback ports, with their store and logs in a temp dir of their own. Both are
//! killed (kill -9) and reaped when the struct drops, also while a test panics; then the temp
//! dir is kept and the log tails printed.
//!
//! The binaries are looked up in `$GRU_ROCKETMQ_BIN`, then on PATH, then in
//! `~/.cache/gru/rocketmq-1.0.0/bin`, where `.ci/run` installs them.
//!
//! The broker runs with lean store sizes (a 64 MiB commit-log file instead of 1 GiB, small
//! consume-queue and index files, no timer wheel) and logs warnings only: what a test needs,
//! in a few MiB of disk.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ports::{claim_port, free_port};
use crate::process::{tail, KillOnDrop, ProcessError};

/// How long a server may take to report ready after it was spawned.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);
/// The installed version, and where `.ci/run` puts it.
const CACHE: &str = ".cache/gru/rocketmq-1.0.0/bin";
const NAMESRV: &str = "rocketmq-namesrv-rust";
const BROKER: &str = "rocketmq-broker-rust";
const INSTALL: &str =
    "`.ci/run` installs them (cargo install --locked --root ~/.cache/gru/rocketmq-1.0.0 \
                       rocketmq-namesrv@1.0.0 rocketmq-broker@1.0.0), or set GRU_ROCKETMQ_BIN";

/// Why RocketMQ could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RocketMqError {
    /// A binary was not found.
    #[error("`{0}` was not found in $GRU_ROCKETMQ_BIN, on PATH or in ~/{CACHE}: {INSTALL}")]
    Missing(&'static str),
    /// The temp dir or a config file could not be written.
    #[error("cannot prepare RocketMQ's directory: {0}")]
    Dir(#[source] std::io::Error),
    /// A process could not be started.
    #[error(transparent)]
    Spawn(#[from] ProcessError),
    /// A process exited, or did not report ready in time (it was killed).
    #[error("{name} did not become ready within {READY_DEADLINE:?}; log:\n{log}")]
    NotReady {
        /// Which one.
        name: &'static str,
        /// The tail of its log.
        log: String,
    },
}

/// Where binary `name` is.
fn binary(name: &'static str) -> Result<PathBuf, RocketMqError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("GRU_ROCKETMQ_BIN") {
        dirs.push(dir.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(CACHE));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(RocketMqError::Missing(name))
}

/// A port `p` free on 127.0.0.1 with `p - 2` free and handed out to nobody else too: the
/// broker also listens on `listenPort - 2` (RocketMQ's "fast" port), which must not be a port
/// handed out for another server that has not bound it yet. The fast port is taken first and
/// `p` claimed two above it: this process hands ports out in sequence, so a port two below
/// the last one handed out is usually its own already, while one two above is not yet.
fn free_broker_port() -> u16 {
    loop {
        let fast = free_port();
        if let Some(p) = fast.checked_add(2).filter(|p| claim_port(*p)) {
            return p;
        }
    }
}

/// One process and how to tell it is ready.
struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// `ROCKETMQ_HEALTH_BIND_ADDR`: where it answers `GET /readyz`.
    health: SocketAddr,
    log: PathBuf,
    process: Option<KillOnDrop>,
}

impl Server {
    fn spawn_and_wait(&mut self, home: &Path) -> Result<(), RocketMqError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env("ROCKETMQ_HOME", home)
            .env("ROCKETMQ_HEALTH_BIND_ADDR", self.health.to_string())
            .env("RUST_LOG", "warn")
            .env_remove("NAMESRV_ADDR");
        self.process = Some(KillOnDrop::spawn(self.name, &mut cmd, &self.log)?);
        let start = Instant::now();
        loop {
            if ready(self.health) {
                return Ok(());
            }
            let exited = self.process.as_mut().and_then(KillOnDrop::exited).is_some();
            if exited || start.elapsed() > READY_DEADLINE {
                self.process = None;
                return Err(RocketMqError::NotReady {
                    name: self.name,
                    log: tail(&self.log, 30),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Whether `GET /readyz` on `addr` answers 200.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A name server and a broker on 127.0.0.1.
pub struct RocketMq {
    /// The temp dir (kept when a test fails).
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    namesrv_port: u16,
    broker_port: u16,
    namesrv: Server,
    broker: Server,
}

impl RocketMq {
    /// Starts a name server and a broker on free ports in a temp dir of their own, and waits
    /// until both report ready.
    pub fn start() -> Result<Self, RocketMqError> {
        Self::start_on(free_port())
    }

    /// [`Self::start`] with the name server on `namesrv_port` (for a cluster configured
    /// before its broker exists).
    pub fn start_on(namesrv_port: u16) -> Result<Self, RocketMqError> {
        let (namesrv_bin, broker_bin) = (binary(NAMESRV)?, binary(BROKER)?);
        let dir = tempfile::Builder::new()
            .prefix("gru-rocketmq-")
            .tempdir()
            .map_err(RocketMqError::Dir)?;
        let root = dir.path().to_path_buf();
        let broker_port = free_broker_port();
        let store = root.join("store");
        let config = root.join("broker.toml");
        std::fs::create_dir_all(&store).map_err(RocketMqError::Dir)?;
        std::fs::write(
            &config,
            broker_config(broker_port, free_port(), namesrv_port, &store),
        )
        .map_err(RocketMqError::Dir)?;
        let health = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let namesrv = Server {
            name: NAMESRV,
            program: namesrv_bin,
            args: vec![
                "--listenPort".into(),
                namesrv_port.to_string(),
                "--bindAddress".into(),
                "127.0.0.1".into(),
                "--kvConfigPath".into(),
                root.join("kvConfig.json").display().to_string(),
                "--log-filter".into(),
                "warn".into(),
            ],
            health: health(free_port()),
            log: root.join("namesrv.log"),
            process: None,
        };
        let broker = Server {
            name: BROKER,
            program: broker_bin,
            args: vec![
                "-c".into(),
                config.display().to_string(),
                "--log-filter".into(),
                "warn".into(),
            ],
            health: health(free_port()),
            log: root.join("broker.log"),
            process: None,
        };
        let mut mq = Self {
            dir: Some(dir),
            root,
            namesrv_port,
            broker_port,
            namesrv,
            broker,
        };
        mq.namesrv.spawn_and_wait(&mq.root)?;
        mq.broker.spawn_and_wait(&mq.root)?;
        Ok(mq)
    }

    /// The name server's address, `127.0.0.1:<port>` (`rocketmq.name_server`).
    pub fn name_server(&self) -> String {
        format!("127.0.0.1:{}", self.namesrv_port)
    }

    /// The broker's address.
    pub fn broker_addr(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// The broker's process id, while it runs.
    pub fn broker_pid(&self) -> Option<u32> {
        self.broker.process.as_ref().map(KillOnDrop::pid)
    }

    /// The name server's process id, while it runs.
    pub fn namesrv_pid(&self) -> Option<u32> {
        self.namesrv.process.as_ref().map(KillOnDrop::pid)
    }

    /// kill -9 the broker and reap it. What it stored stays on disk.
    pub fn kill_broker(&mut self) {
        self.broker.process = None;
    }

    /// Starts the broker again on the same ports and store, and waits until it is ready.
    ///
    /// # Panics
    ///
    /// When it does not come back (a test failure).
    pub fn restart_broker(&mut self) {
        self.kill_broker();
        if let Err(e) = self.broker.spawn_and_wait(&self.root) {
            panic!("restarting the RocketMQ broker: {e}");
        }
    }

    /// kill -9 the name server and reap it.
    pub fn kill_name_server(&mut self) {
        self.namesrv.process = None;
    }

    /// Starts the name server again on the same port and waits until it is ready (the broker
    /// registers with it again within its registration period, 30 s in RocketMQ).
    ///
    /// # Panics
    ///
    /// When it does not come back (a test failure).
    pub fn restart_name_server(&mut self) {
        self.kill_name_server();
        if let Err(e) = self.namesrv.spawn_and_wait(&self.root) {
            panic!("restarting the RocketMQ name server: {e}");
        }
    }

    /// The last `lines` lines of the broker's log.
    pub fn broker_log(&self, lines: usize) -> String {
        tail(&self.broker.log, lines)
    }
}

/// The broker's config: its ports, the name server, a store under `store` with lean sizes.
fn broker_config(port: u16, ha_port: u16, namesrv_port: u16, store: &Path) -> String {
    let store = store.display();
    format!(
        r#"[broker]
brokerIp1 = "127.0.0.1"
listenPort = {port}
namesrvAddr = "127.0.0.1:{namesrv_port}"
storePathRootDir = "{store}"
autoCreateTopicEnable = true

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "gru-test-broker"
brokerClusterName = "DefaultCluster"
brokerId = 0

[store]
brokerRole = "ASYNC_MASTER"
flushDiskType = "ASYNC_FLUSH"
haListenAddress = "127.0.0.1"
haListenPort = {ha_port}
storePathRootDir = "{store}"
mappedFileSizeCommitLog = 67108864
mappedFileSizeConsumeQueue = 600000
maxHashSlotNum = 50000
maxIndexNum = 200000
timerWheelEnable = false
"#
    )
}

impl Drop for RocketMq {
    fn drop(&mut self) {
        self.broker.process = None;
        self.namesrv.process = None;
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "RocketMQ files kept in {}\n--- broker log ---\n{}\n--- name server log ---\n{}",
                    kept.display(),
                    tail(&self.broker.log, 30),
                    tail(&self.namesrv.log, 30),
                );
            }
        }
    }
}
