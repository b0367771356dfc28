//! The connection to Redis that a node's relay, presence and stat share: a standalone server
//! through redis-rs's reconnecting `ConnectionManager`, or a Redis Cluster through its async
//! cluster connection. Both speak RESP3, so one connection carries commands and pub/sub pushes.
//!
//! Every command runs under `redis.timeout_ms`; a broken connection marks the link down
//! ([`LinkHealth`]) and a monitor pings until Redis answers again. A slow answer fails its
//! command only. Services never see redis-rs connection types.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::RedisSection;

/// How often a link that is down pings Redis.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// Commands per pipeline sent to a standalone server at once.
const PIPELINE_CHUNK: usize = 4096;

/// Why a Redis operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// The config cannot describe a connection (bad URL).
    #[error("invalid redis.url: {0}")]
    Config(String),
    /// The cluster connection has not been established yet.
    #[error("not connected to the Redis Cluster yet")]
    NotConnected,
    /// Redis did not answer in time: the command may have run.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// No connection could be made (refused, or Redis Cluster redirections exhausted): the
    /// command was not run.
    #[error("Redis: {0}")]
    Unreachable(String),
    /// The connection broke while the command was on it: it may have run.
    #[error("Redis: {0}")]
    Lost(String),
    /// Redis answered with an error.
    #[error("Redis: {0}")]
    Command(String),
}

impl RedisError {
    /// Whether the command may have run although it failed (no answer in time, or the
    /// connection broke with it in flight): a write then has an unknown outcome.
    pub fn may_have_run(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Lost(_))
    }
}

/// A Lua script, run with [`RedisLink::eval`].
#[derive(Debug)]
pub struct Script {
    code: &'static str,
    hash: String,
}

impl Script {
    /// The script `code`.
    pub fn new(code: &'static str) -> Self {
        Self {
            code,
            hash: redis::Script::new(code).get_hash().to_string(),
        }
    }

    fn hash(&self) -> &str {
        &self.hash
    }
}

/// Whether Redis is reachable, since when, and how many outages there were.
#[derive(Debug)]
pub struct LinkHealth {
    connected: AtomicBool,
    outages: AtomicU64,
    /// When the link last came back after an outage; `None` before the first outage.
    up_since: Mutex<Option<Instant>>,
    /// Signalled when the link goes down, so that the monitor sleeps while it is up.
    went_down: Notify,
}

impl LinkHealth {
    fn new() -> Self {
        Self {
            connected: AtomicBool::new(true),
            outages: AtomicU64::new(0),
            up_since: Mutex::new(None),
            went_down: Notify::new(),
        }
    }

    /// Records a failed operation: the link is down until a command succeeds again.
    pub fn failed(&self, why: &str) {
        if self.connected.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            // A permit is kept if the monitor is not waiting yet: the outage is never missed.
            self.went_down.notify_one();
            tracing::warn!(
                error = why,
                "Redis unreachable: relaying and presence paused"
            );
        }
    }

    fn succeeded(&self) {
        if !self.connected.load(Ordering::Acquire) {
            if let Ok(mut up) = self.up_since.lock() {
                *up = Some(Instant::now());
            }
            self.connected.store(true, Ordering::Release);
            tracing::info!("Redis reachable again");
        }
    }

    /// Whether the last operation succeeded.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Connected, and for at least `settle` since the last outage.
    pub fn settled(&self, settle: Duration) -> bool {
        self.is_connected()
            && self
                .up_since
                .lock()
                .map(|up| up.is_none_or(|t| t.elapsed() >= settle))
                .unwrap_or(true)
    }

    /// Outages seen since the node started.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }
}

/// Commands grouped by the hash tag of their keys: a Redis Cluster only pipelines commands of
/// one slot, so each group is one pipeline there; a standalone server gets them all at once.
#[derive(Default)]
pub struct Batch {
    groups: BTreeMap<String, Vec<Cmd>>,
    len: usize,
}

impl Batch {
    /// Adds `cmd`, whose keys all carry the hash tag `tag`.
    pub fn add(&mut self, tag: &str, cmd: Cmd) {
        self.groups.entry(tag.to_string()).or_default().push(cmd);
        self.len += 1;
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No commands.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A node's connection to Redis.
pub struct RedisLink {
    single: Option<ConnectionManager>,
    cluster: OnceLock<ClusterConnection>,
    /// The cluster client until [`RedisLink::run_monitor`] has connected it.
    cluster_client: std::sync::Mutex<Option<redis::cluster::ClusterClient>>,
    is_cluster: bool,
    timeout: Duration,
    health: LinkHealth,
}

fn to_err(e: redis::RedisError) -> RedisError {
    RedisError::Command(e.to_string())
}

/// A failed connection: a refused connect (the command never left) or a cluster redirection
/// is [`RedisError::Unreachable`]; anything else (reset, broken pipe, end of stream) may have
/// struck after the command was written, so it is [`RedisError::Lost`].
fn transport_err(e: redis::RedisError) -> RedisError {
    if e.is_connection_refusal() || e.is_cluster_error() {
        RedisError::Unreachable(e.to_string())
    } else {
        RedisError::Lost(e.to_string())
    }
}

impl RedisLink {
    /// Opens the link described by `section`; pub/sub messages go to `pushes`. A standalone
    /// connection is made lazily, a cluster one by [`Self::run_monitor`] (which the owner runs
    /// as a worker), so a node starts while Redis is down and catches up when it comes.
    pub fn open(
        section: &RedisSection,
        pushes: Option<UnboundedSender<PushInfo>>,
    ) -> Result<Arc<Self>, RedisError> {
        let timeout = Duration::from_millis(section.timeout_ms);
        let info = section
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| RedisError::Config(e.to_string()))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        // No Nagle: a publish written while the previous one is unacknowledged would otherwise
        // wait for Redis's ACK, and relayed messages are small and latency-bound.
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let info = info
            .set_redis_settings(settings)
            .set_tcp_settings(tcp.clone());
        if !section.cluster {
            let client =
                redis::Client::open(info).map_err(|e| RedisError::Config(e.to_string()))?;
            let mut config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            if let Some(tx) = pushes {
                config = config.set_push_sender(tx).set_automatic_resubscription();
            }
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| RedisError::Config(e.to_string()))?;
            return Ok(Arc::new(Self {
                single: Some(manager),
                cluster: OnceLock::new(),
                cluster_client: std::sync::Mutex::new(None),
                is_cluster: false,
                timeout,
                health: LinkHealth::new(),
            }));
        }
        let mut builder = redis::cluster::ClusterClientBuilder::new(vec![info])
            .use_protocol(ProtocolVersion::RESP3)
            .tcp_settings(tcp)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2);
        if let Some(tx) = pushes {
            builder = builder.push_sender(tx);
        }
        let client = builder
            .build()
            .map_err(|e| RedisError::Config(e.to_string()))?;
        Ok(Arc::new(Self {
            single: None,
            cluster: OnceLock::new(),
            cluster_client: std::sync::Mutex::new(Some(client)),
            is_cluster: true,
            timeout,
            health: LinkHealth::new(),
        }))
    }

    /// A Redis Cluster link: connects, retrying until it succeeds or `cancel`. Returns whether
    /// it connected.
    async fn connect_cluster(&self, cancel: &CancellationToken) -> bool {
        let client = match self.cluster_client.lock() {
            Ok(mut pending) => pending.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(client) = client else {
            return true;
        };
        loop {
            match client.get_async_connection().await {
                Ok(conn) => {
                    let _ = self.cluster.set(conn);
                    self.health.succeeded();
                    tracing::info!("connected to the Redis Cluster");
                    return true;
                }
                Err(e) => self.health.failed(&e.to_string()),
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
        }
    }

    /// Whether this is a Redis Cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        self.is_cluster
    }

    /// Reachability and outages.
    pub fn health(&self) -> &LinkHealth {
        &self.health
    }

    fn conn(&self) -> Result<Conn, RedisError> {
        if let Some(m) = &self.single {
            return Ok(Conn::Single(m.clone()));
        }
        self.cluster
            .get()
            .cloned()
            .map(Conn::Cluster)
            .ok_or(RedisError::NotConnected)
    }

    /// Runs `fut` under the command timeout and records the outcome in the health.
    async fn guarded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let outcome = match tokio::time::timeout(self.timeout, fut).await {
            // A slow answer fails this command only: the connection (and every subscription
            // on it) is intact, so it is no outage. A broken connection shows as a transport
            // error or a disconnect push.
            Err(_) => return Err(RedisError::Timeout(self.timeout)),
            Ok(Err(e)) if is_transport(&e) => Err(transport_err(e)),
            Ok(Err(e)) => {
                // Redis answered: the link is fine, the command was not.
                self.health.succeeded();
                return Err(to_err(e));
            }
            Ok(Ok(v)) => Ok(v),
        };
        match &outcome {
            Ok(_) => self.health.succeeded(),
            Err(e) => self.health.failed(&e.to_string()),
        }
        outcome
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        match self.conn() {
            Ok(Conn::Single(mut c)) => self.guarded(cmd.query_async(&mut c)).await,
            Ok(Conn::Cluster(mut c)) => self.guarded(cmd.query_async(&mut c)).await,
            Err(e) => Err(e),
        }
    }

    /// Runs `script` on `keys` (one hash tag) with `args`: by its hash, and by its text when
    /// Redis does not know it yet (a new or restarted server), which loads it.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, RedisError> {
        let call = |verb: &str, body: &str| {
            let mut cmd = redis::cmd(verb);
            cmd.arg(body).arg(keys.len()).arg(keys);
            for a in args {
                cmd.arg(*a);
            }
            cmd
        };
        match self.query(&call("EVALSHA", script.hash())).await {
            Err(RedisError::Command(e)) if e.to_ascii_uppercase().contains("NOSCRIPT") => {
                self.query(&call("EVAL", script.code)).await
            }
            other => other,
        }
    }

    /// Runs a pipeline whose keys share one hash tag.
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, RedisError> {
        match self.conn() {
            Ok(Conn::Single(mut c)) => self.guarded(pipe.query_async(&mut c)).await,
            Ok(Conn::Cluster(mut c)) => self.guarded(pipe.query_async(&mut c)).await,
            Err(e) => Err(e),
        }
    }

    /// Runs every command of `batch`, replies ignored; the first failure is returned.
    pub async fn exec(&self, batch: Batch) -> Result<(), RedisError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.is_cluster {
            let runs = batch.groups.into_values().map(|cmds| async move {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd).ignore();
                }
                self.query_pipeline::<()>(&pipe).await
            });
            for outcome in futures_util::future::join_all(runs).await {
                outcome?;
            }
            return Ok(());
        }
        let mut cmds = batch.groups.into_values().flatten().peekable();
        while cmds.peek().is_some() {
            let mut pipe = redis::pipe();
            for cmd in cmds.by_ref().take(PIPELINE_CHUNK) {
                pipe.add_command(cmd).ignore();
            }
            self.query_pipeline::<()>(&pipe).await?;
        }
        Ok(())
    }

    /// Publishes `payload` on `channel` (`SPUBLISH` on a cluster); returns how many
    /// subscribers received it.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<u64, RedisError> {
        let verb = if self.is_cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        self.query(redis::cmd(verb).arg(channel).arg(payload)).await
    }

    /// Subscribes to `channels` (`SSUBSCRIBE` on a cluster, one slot per call there).
    pub async fn subscribe(&self, channels: &[String]) -> Result<(), RedisError> {
        self.pubsub(channels, true).await
    }

    /// Unsubscribes from `channels`.
    pub async fn unsubscribe(&self, channels: &[String]) -> Result<(), RedisError> {
        self.pubsub(channels, false).await
    }

    async fn pubsub(&self, channels: &[String], subscribe: bool) -> Result<(), RedisError> {
        if channels.is_empty() {
            return Ok(());
        }
        match self.conn()? {
            Conn::Single(mut c) if subscribe => self.guarded(c.subscribe(channels)).await,
            Conn::Single(mut c) => self.guarded(c.unsubscribe(channels)).await,
            Conn::Cluster(c) => {
                let runs = channels.iter().map(|ch| {
                    let mut c = c.clone();
                    async move {
                        if subscribe {
                            self.guarded(c.ssubscribe(ch)).await
                        } else {
                            self.guarded(c.sunsubscribe(ch)).await
                        }
                    }
                });
                futures_util::future::join_all(runs)
                    .await
                    .into_iter()
                    .collect()
            }
        }
    }

    /// The link's worker, until `cancel`: makes a Redis Cluster connection (a cluster link has
    /// none before), then pings Redis while the link is down, so that it is known to be back
    /// even when nothing else sends a command.
    pub async fn run_monitor(self: Arc<Self>, cancel: CancellationToken) {
        if !self.connect_cluster(&cancel).await {
            return;
        }
        loop {
            // Nothing to do while the link is up: wait for it to go down instead of waking
            // every probe interval to look (an idle spear's wake-ups are its cost).
            if self.health.is_connected() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = self.health.went_down.notified() => {}
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
            if !self.health.is_connected() {
                let _ = self.query::<String>(&redis::cmd("PING")).await;
            }
        }
    }
}

/// Whether an error says the connection (not the command) failed.
fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.is_cluster_error()
}
