//! The cluster test harness: real `gru` processes from a generated `cluster.toml`.
//!
//! `TestCluster` writes the config into a temp dir, spawns one `gru run` per node of the given
//! [`GruBin`] (stdout and stderr to `node<id>.log`), and offers start / kill -9 / stop /
//! restart, cluster views over HTTP, a control-plane client, and `wait_for` with deadlines.
//! Every child is killed on drop; when the test is failing, the temp dir is kept and the tail
//! of every log is printed.
//!
//! When the config has more than one spear the relay is Redis (or RocketMQ, with
//! [`ClusterOptions::rocketmq`], its routes in Redis): the cluster then uses
//! `ClusterOptions::redis` or, without one, a private `redis-server` it starts and kills
//! (`redis.rs`), so no test shares the machine's Redis.
//!

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gru::net::grpc::{ChannelPool, ClusterClient};
use gru::raft::ClusterView;

use crate::process::{tail, KillOnDrop};
use crate::{ports, proxy, redis, GruBin};

/// The lease length the harness configures (the product default).
pub const LEASE_TTL_MS: u64 = 3000;

/// What a test node is.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node id.
    pub id: u64,
    /// Its roles, as written in the config.
    pub roles: Vec<&'static str>,
    /// Whether it joins a running group instead of being an initial voter.
    pub join: bool,
}

impl NodeSpec {
    /// A core node that is an initial voter.
    pub fn core(id: u64) -> Self {
        Self {
            id,
            roles: vec!["core"],
            join: false,
        }
    }
    /// A core node that joins later.
    pub fn joining_core(id: u64) -> Self {
        Self {
            id,
            roles: vec!["core"],
            join: true,
        }
    }
    /// A node with the given roles.
    pub fn with_roles(id: u64, roles: &[&'static str]) -> Self {
        Self {
            id,
            roles: roles.to_vec(),
            join: false,
        }
    }

    /// A spear-only node.
    pub fn spear(id: u64) -> Self {
        Self {
            id,
            roles: vec!["spear"],
            join: false,
        }
    }
}

/// The addresses of one node.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Internal gRPC.
    pub grpc: u16,
    /// The public HTTP surface.
    pub http: u16,
    /// socket.io.
    pub sio: u16,
    /// Gossip.
    pub gossip: u16,
    /// The admin surface: `http` unless the cluster has [`ClusterOptions::separate_surfaces`].
    pub admin: u16,
    /// The server API (spears): `http` unless the cluster has separate surfaces.
    pub server_api: u16,
}

struct TestNode {
    spec: NodeSpec,
    ports: Ports,
    /// The loopback address the node binds and dials from.
    host: IpAddr,
    /// The fault proxy in front of its internal gRPC, if the cluster has proxies.
    proxy: Option<proxy::FaultProxy>,
    /// Its process, while it runs.
    process: Option<KillOnDrop>,
    /// Environment of this node alone, over the cluster's.
    env: Vec<(String, String)>,
}

/// How a test cluster is set up beyond its nodes.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Put a fault proxy in front of every node's internal gRPC and give every node its own
    /// loopback address, so that `partition` can cut it off.
    pub proxies: bool,
    /// TOML appended to the generated config's cluster-wide sections (e.g. `[idgen]`).
    pub extra_toml: String,
    /// Environment of every node process (e.g. `GRU_AUTH__ENFORCE_GROUPS=true`).
    pub env: Vec<(String, String)>,
    /// The Redis the Redis relay uses (more than one spear). `None`: the cluster starts a
    /// private `redis-server` of its own.
    pub redis: Option<RedisTarget>,
    /// The body of the `[auth]` section; `None`: the harness's secrets ([`BUSINESS_SECRET`],
    /// [`SPEAR_SECRET`]).
    pub auth_toml: Option<String>,
    /// With more than one spear: relay through RocketMQ at this name server (`host:port`,
    /// see [`crate::rocketmq::RocketMq`]) instead of Redis pub/sub; the routes still go to
    /// the cluster's Redis.
    pub rocketmq: Option<String>,
    /// Give every node's admin surface and server API addresses of their own, as a
    /// deployment does. Off, they share the public `listen.http` (allowed on loopback, where
    /// every test node listens): one port per node for every HTTP request.
    pub separate_surfaces: bool,
}

/// The harness's business secret.
pub const BUSINESS_SECRET: &str = "test-business-secret-0123456789";
/// The harness's spear secret.
pub const SPEAR_SECRET: &str = "test-spear-secret-abcdefghijkl";
/// The harness's gossip key (`auth.gossip_keys`); a test reads it from the config file.
const GOSSIP_KEY: &str = "test-gossip-key-0123456789abcdef0123456789";
/// The harness's server-API key (named [`API_KEY_NAME`], every scope).
pub const API_KEY: &str = "test-server-api-key-0123456789abcdef";
/// The name of [`API_KEY`].
pub const API_KEY_NAME: &str = "test";
/// The harness's admin key (named `test`, scope `admin`): [`TestCluster`]'s own requests
/// present it.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";
/// The harness's read-only admin key (`scopes = ["read"]`, named `prometheus`): reads the
/// admin surface (`/metrics`, the cluster view), changes nothing.
pub const READ_KEY: &str = "test-read-key-0123456789abcdef01234567890";

/// An HTTP client that presents [`ADMIN_KEY`] with every request: for a test that calls the
/// admin surface (and the public routes beside it) with its own requests.
pub fn admin_http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN_KEY}"))
        .expect("the key is a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// A Redis for the cluster's `[redis]` section.
#[derive(Clone, Debug)]
pub enum RedisTarget {
    /// A standalone server: its URL.
    Server(String),
    /// A Redis Cluster: the URL of one of its nodes (`cluster = true`).
    Cluster(String),
}

/// A cluster of real `gru` processes.
pub struct TestCluster {
    /// What every node runs.
    gru: GruBin,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    config_path: PathBuf,
    nodes: BTreeMap<u64, TestNode>,
    options: ClusterOptions,
    http: reqwest::Client,
    /// The private Redis started when the relay is Redis and `options.redis` is `None`.
    redis: Option<redis::RedisServer>,
}

/// The ids of the core nodes of [`TestCluster::three_cores`].
pub const CORES: [u64; 3] = [1, 2, 3];

impl TestCluster {
    /// Three core nodes ([`CORES`]) running `gru`, started and agreed on a leader: the
    /// cluster, the leader and its term.
    pub async fn three_cores(gru: GruBin) -> (Self, u64, u64) {
        let cluster = Self::builder().gru(gru).cores(&CORES).launch().await;
        let (leader, term) = cluster.wait_ready().await;
        (cluster, leader, term)
    }

    /// Writes the config for `specs`, starts every node and waits (30 s at most) until the
    /// core nodes agree on a leader: the cluster, the leader and its term.
    pub async fn launch(
        gru: GruBin,
        specs: &[NodeSpec],
        options: ClusterOptions,
    ) -> (Self, u64, u64) {
        let mut cluster = Self::with(gru, specs, options);
        cluster.start_all();
        let cores = cluster.core_ids();
        let (leader, term) = cluster.wait_leader(&cores, Duration::from_secs(30)).await;
        (cluster, leader, term)
    }

    /// Writes a config for `specs`, whose nodes will run `gru` (nothing started yet).
    pub fn new(gru: GruBin, specs: &[NodeSpec]) -> Self {
        Self::with(gru, specs, ClusterOptions::default())
    }

    /// Like [`Self::new`] with options. With proxies it must run inside a tokio runtime.
    pub fn with(gru: GruBin, specs: &[NodeSpec], options: ClusterOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gru-test-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        let nodes = specs
            .iter()
            .map(|spec| (spec.id, TestNode::new(spec.clone(), &options)))
            .collect();
        let mut cluster = Self {
            gru,
            config_path: root.join("cluster.toml"),
            dir: Some(dir),
            root,
            nodes,
            options,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
            redis: None,
        };
        cluster.ensure_redis();
        cluster.write_config();
        cluster
    }

    /// Starts every node in id order.
    pub fn start_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.start(id);
        }
    }

    /// Adds a node to the config (rewriting the file); start it with [`Self::start`].
    pub fn add_node(&mut self, spec: NodeSpec) {
        let node = TestNode::new(spec.clone(), &self.options);
        self.nodes.insert(spec.id, node);
        self.ensure_redis();
        self.write_config();
    }

    /// The private Redis (see [`ClusterOptions::redis`]), to kill or restart it.
    pub fn redis(&mut self) -> Option<&mut redis::RedisServer> {
        self.redis.as_mut()
    }

    /// Starts the private Redis once the relay is Redis and no Redis was given.
    fn ensure_redis(&mut self) {
        if self.spear_ids().len() > 1 && self.options.redis.is_none() && self.redis.is_none() {
            let redis = redis::RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
            self.redis = Some(redis);
        }
    }

    /// The Redis the config names: the given one, else the private one.
    fn redis_target(&self) -> Option<RedisTarget> {
        self.options
            .redis
            .clone()
            .or_else(|| self.redis.as_ref().map(|r| RedisTarget::Server(r.url())))
    }

    /// Cuts node `id` off from every other node (both directions); the test process can still
    /// reach it.
    pub fn partition(&self, id: u64) {
        self.set_partition(id, true);
        append_marker(&self.log_path(id), "=== harness: partitioned ===");
    }

    /// Undoes [`Self::partition`].
    pub fn heal(&self, id: u64) {
        self.set_partition(id, false);
        append_marker(&self.log_path(id), "=== harness: healed ===");
    }

    fn set_partition(&self, id: u64, cut: bool) {
        let ip = self.nodes[&id].host;
        for (other, node) in &self.nodes {
            let proxy = node
                .proxy
                .as_ref()
                .expect("partition needs ClusterOptions::proxies");
            let sources: Vec<IpAddr> = if *other == id {
                self.nodes
                    .values()
                    .filter(|n| n.spec.id != id)
                    .map(|n| n.host)
                    .collect()
            } else {
                vec![ip]
            };
            for source in sources {
                if cut {
                    proxy.block(source);
                } else {
                    proxy.unblock(source);
                }
            }
        }
    }

    /// The config file's path.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The ids of the nodes whose process is running.
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.process.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The ids of the nodes with the spear role.
    pub fn spear_ids(&self) -> Vec<u64> {
        self.ids_with("spear")
    }

    /// The ids of the core nodes.
    pub fn core_ids(&self) -> Vec<u64> {
        self.ids_with("core")
    }

    fn ids_with(&self, role: &str) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.spec.roles.contains(&role))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The ports of node `id`.
    pub fn ports(&self, id: u64) -> Ports {
        self.nodes[&id].ports
    }

    /// The log file of node `id`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.root.join(format!("node{id}.log"))
    }

    /// The whole log of node `id`.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    fn write_config(&self) {
        let spears = self.spear_ids().len();
        let relay = match (&self.options.rocketmq, spears) {
            (_, 0 | 1) => "local",
            (None, _) => "redis",
            (Some(_), _) => "rocketmq",
        };
        // One `[redis]` section only: the test's own, if its extra TOML has one.
        let user_redis = self
            .options
            .extra_toml
            .lines()
            .any(|l| l.trim_start().starts_with("[redis]"));
        let redis_section = match self.redis_target() {
            _ if relay == "local" || user_redis => String::new(),
            Some(RedisTarget::Server(url)) => format!("\n[redis]\nurl = \"{url}\"\n"),
            Some(RedisTarget::Cluster(url)) => {
                format!("\n[redis]\nurl = \"{url}\"\ncluster = true\n")
            }
            None => String::new(),
        };
        // Every test client comes from 127.0.0.1, and some scenarios ask ticket for dozens of
        // users in a loop: the per-address ticket limit is off unless a test sets it
        // (`ticket_rate_limit` does, through the environment).
        let user_ticket = self
            .options
            .extra_toml
            .lines()
            .any(|l| l.trim_start().starts_with("[ticket]"));
        let ticket_section = if user_ticket {
            ""
        } else {
            "\n[ticket]\nrequests_per_ip_per_sec = 0\n"
        };
        let mut toml = format!(
            r#"{extra}{ticket_section}
[cluster]
name = "gru-test"

[spear]
lease_ttl_ms = {LEASE_TTL_MS}
lease_renew_ms = 1000
lease_sweep_ms = 100

[relay]
kind = "{relay}"
{redis_section}{rocketmq_section}
[auth]
{auth}
"#,
            extra = self.options.extra_toml,
            rocketmq_section = match &self.options.rocketmq {
                Some(addr) if relay == "rocketmq" => {
                    format!("\n[rocketmq]\nname_server = \"{addr}\"\n")
                }
                _ => String::new(),
            },
            auth = self.auth_toml(),
        );
        for node in self.nodes.values() {
            let roles = node
                .spec
                .roles
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let p = node.ports;
            let host = node.host;
            let spear = node.spec.roles.contains(&"spear");
            let sio = if spear {
                format!(
                    "sio = \"{host}:{}\"\nserver_api = \"{host}:{}\"\n",
                    p.sio, p.server_api
                )
            } else {
                String::new()
            };
            let advertise = match &node.proxy {
                Some(proxy) => format!("[nodes.advertise]\ngrpc = \"{}\"\n", proxy.addr()),
                None => String::new(),
            };
            toml.push_str(&format!(
                r#"
[[nodes]]
id = {id}
roles = [{roles}]
data_dir = "{dir}"
join = {join}
{advertise}[nodes.listen]
grpc = "{host}:{grpc}"
http = "{host}:{http}"
gossip = "{host}:{gossip}"
admin = "{host}:{admin}"
{sio}"#,
                id = node.spec.id,
                dir = self.root.join(format!("data{}", node.spec.id)).display(),
                join = node.spec.join,
                grpc = p.grpc,
                http = p.http,
                gossip = p.gossip,
                admin = p.admin,
            ));
        }
        std::fs::write(&self.config_path, toml).expect("write cluster.toml");
        // Mutual TLS on the internal port, as a deployment has it: the CA and a certificate
        // for every node (made once; a node added later gets one too), in `certs/`.
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        gru::net::tls::make_certs(&self.certs_dir(), &ids, false).expect("make certificates");
    }

    /// Where the cluster's CA and certificates are (`[cluster_tls] dir`, the default).
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// A channel pool to the nodes' internal ports with the harness's tool certificate (what a
    /// member presents: the cluster's CA signed it).
    pub fn tool_pool(&self) -> ChannelPool {
        let section = gru::config::ClusterTlsSection {
            dir: self.certs_dir(),
            ..gru::config::ClusterTlsSection::default()
        };
        let tls = gru::net::tls::ClusterTls::for_tool(&section).expect("the harness's certificate");
        ChannelPool::new(Duration::from_millis(500)).with_tls(tls.map(|t| t.client))
    }

    /// The `[auth]` body: the test's own (with the harness's admin key added unless it has
    /// admin keys of its own), or the harness's secrets and keys.
    fn auth_toml(&self) -> String {
        let admin = format!(
            "\n[[auth.admin_keys]]\nname = \"test\"\nsecret = \"{ADMIN_KEY}\"\n\
             [[auth.admin_keys]]\nname = \"prometheus\"\nsecret = \"{READ_KEY}\"\n\
             scopes = [\"read\"]\n"
        );
        let body = match &self.options.auth_toml {
            Some(own) if own.contains("admin_keys") => own.clone(),
            Some(own) => format!("{own}{admin}"),
            None => format!(
                "business_secret = \"{BUSINESS_SECRET}\"\nspear_secret = \"{SPEAR_SECRET}\"\n\
                 [[auth.api_keys]]\nname = \"{API_KEY_NAME}\"\nsecret = \"{API_KEY}\"\n{admin}"
            ),
        };
        // The harness's gossip key, unless the test lists its own; first, so that it belongs to
        // `[auth]` and not to a key table the body ends with.
        if body.contains("gossip_keys") {
            body
        } else {
            format!("gossip_keys = [\"{GOSSIP_KEY}\"]\n{body}")
        }
    }

    /// The `gru` binary the nodes run.
    pub fn gru(&self) -> &GruBin {
        &self.gru
    }

    /// Spawns node `id` (appending to its log).
    pub fn start(&mut self, id: u64) {
        let mut cmd = self.gru.command();
        cmd.args(["run", "--config"])
            .arg(&self.config_path)
            .args(["--node", &id.to_string()])
            .env("GRU_LOG", "info,gru=debug,openraft=info")
            .envs(
                self.options
                    .env
                    .iter()
                    .chain(&self.nodes[&id].env)
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        let process = KillOnDrop::spawn(&format!("gru node {id}"), &mut cmd, &self.log_path(id))
            .unwrap_or_else(|e| panic!("{e}"));
        let node = self.nodes.get_mut(&id).expect("known node");
        assert!(node.process.is_none(), "node {id} is already running");
        node.process = Some(process);
    }

    /// Replaces the body of the `[auth]` section and rewrites the config file (running nodes
    /// see it when they reload: [`Self::signal`] `HUP`).
    pub fn set_auth_toml(&mut self, body: &str) {
        self.options.auth_toml = Some(body.to_string());
        self.write_config();
    }

    /// Sends signal `sig` (`"HUP"`, `"TERM"`, …) to node `id`.
    pub fn signal(&self, id: u64, sig: &str) {
        let process = self.nodes[&id].process.as_ref().expect("node is running");
        assert!(process.signal(sig), "kill -{sig} {}", process.pid());
    }

    /// Freezes node `id` (SIGSTOP, as a paused VM: its ports still take connections, nothing
    /// answers) until the guard is dropped (SIGCONT), also when the test fails.
    pub fn freeze(&self, id: u64) -> Frozen {
        self.signal(id, "STOP");
        Frozen {
            pid: self.pid(id).expect("node is running"),
        }
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes[&id].process.as_ref().map(KillOnDrop::pid)
    }

    /// The resident memory of node `id`'s process, KiB (`VmRSS`).
    pub fn rss_kib(&self, id: u64) -> Option<u64> {
        crate::rss_kib(self.pid(id)?)
    }

    /// The peak resident memory of node `id`'s process since it started, KiB (`VmHWM`).
    pub fn peak_rss_kib(&self, id: u64) -> Option<u64> {
        crate::peak_rss_kib(self.pid(id)?)
    }

    /// kill -9 node `id` and reap it.
    pub fn kill(&mut self, id: u64) {
        if let Some(process) = self.nodes.get_mut(&id).and_then(|n| n.process.take()) {
            drop(process);
            append_marker(&self.log_path(id), "=== harness: kill -9 ===");
        }
    }

    /// SIGTERM node `id` and wait (up to 15 s) for it to exit; returns whether it exited 0
    /// (one that did not exit in time is killed).
    pub fn stop(&mut self, id: u64) -> bool {
        let Some(mut process) = self.nodes.get_mut(&id).and_then(|n| n.process.take()) else {
            return false;
        };
        process
            .stop(Duration::from_secs(15))
            .is_some_and(|status| status.success())
    }

    /// Waits (up to `deadline`) for node `id` to exit by itself, and reaps it; its exit
    /// status, or `None` if it was still running (then it is killed).
    pub fn wait_exit(&mut self, id: u64, deadline: Duration) -> Option<std::process::ExitStatus> {
        let mut process = self.nodes.get_mut(&id).and_then(|n| n.process.take())?;
        process.wait_exit(deadline)
    }

    /// Restarts a killed or stopped node.
    pub fn restart(&mut self, id: u64) {
        append_marker(&self.log_path(id), "=== harness: restart ===");
        self.start(id);
    }

    /// GET /api/v1/cluster on node `id`'s admin surface, or `None` if it does not answer.
    pub async fn view(&self, id: u64) -> Option<ClusterView> {
        let resp = self.get(id, "/api/v1/cluster").await?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// GET `path` on node `id`'s admin surface, with the harness's admin key.
    pub async fn get(&self, id: u64, path: &str) -> Option<reqwest::Response> {
        let url = format!("http://{}{path}", self.admin_addr(id));
        self.http.get(url).bearer_auth(ADMIN_KEY).send().await.ok()
    }

    /// GET `path` on node `id`'s public surface, without credentials.
    pub async fn get_public(&self, id: u64, path: &str) -> Option<reqwest::Response> {
        let url = format!("http://{}{path}", self.http_addr(id));
        self.http.get(url).send().await.ok()
    }

    /// POST `body` to `path` on node `id`'s server API, with `Authorization: Bearer <bearer>`
    /// when given and `headers`; `None` when the node did not answer.
    pub async fn post(
        &self,
        id: u64,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: String,
    ) -> Option<reqwest::Response> {
        let url = format!("http://{}{path}", self.server_api_addr(id));
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = bearer {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.ok()
    }

    /// [`Self::post`], read whole: the status, the headers and the JSON answer. Panics when
    /// the node does not answer or the answer is not JSON (every gru answer is).
    pub async fn post_json(
        &self,
        id: u64,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: String,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let resp = self
            .post(id, path, bearer, headers, body)
            .await
            .unwrap_or_else(|| panic!("node {id} did not answer POST {path}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let answer = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {path} on node {id}: not JSON: {e}"));
        (status, headers, answer)
    }

    /// One node with the client-facing roles (core, spear, ticket) — so the local relay —
    /// running `gru` with `options`, its leader elected and its spear registered.
    pub async fn single_spear(gru: GruBin, options: ClusterOptions) -> Self {
        Self::builder()
            .gru(gru)
            .node(1, &["core", "spear", "ticket"])
            .options(options)
            .launch()
            .await
    }

    /// The views of every node in `ids` that answered.
    pub async fn views(&self, ids: &[u64]) -> BTreeMap<u64, ClusterView> {
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some(v) = self.view(*id).await {
                out.insert(*id, v);
            }
        }
        out
    }

    /// Waits until every node in `ids` reports the same leader (one of `ids`) and term.
    pub async fn wait_leader(&self, ids: &[u64], deadline: Duration) -> (u64, u64) {
        self.wait_for(
            &format!("nodes {ids:?} to agree on a leader"),
            deadline,
            || async {
                let views = self.views(ids).await;
                if views.len() != ids.len() {
                    return None;
                }
                let first = views.values().next()?;
                let leader = first.leader_id?;
                let term = first.term;
                let agreed = views
                    .values()
                    .all(|v| v.leader_id == Some(leader) && v.term == term);
                (agreed && ids.contains(&leader)).then_some((leader, term))
            },
        )
        .await
    }

    /// Waits until every node in `ids` reports the same leader and every one of them, in the
    /// leader's view, has applied the same index. Returns that index.
    pub async fn wait_converged(&self, ids: &[u64], deadline: Duration) -> u64 {
        let (leader, _) = self.wait_leader(ids, deadline).await;
        self.wait_for(
            &format!("nodes {ids:?} to reach the same applied index"),
            deadline,
            || async {
                let view = self.view(leader).await?;
                let applied: Vec<u64> = ids
                    .iter()
                    .map(|id| view.node(*id)?.status.as_ref().map(|s| s.applied_index))
                    .collect::<Option<Vec<_>>>()?;
                let first = *applied.first()?;
                applied.iter().all(|a| *a == first).then_some(first)
            },
        )
        .await
    }

    /// Waits (30 s at most) until node `via`'s cluster view lists exactly `count` registered
    /// spears.
    pub async fn wait_spears(&self, via: u64, count: usize) {
        self.wait_for(
            &format!("{count} spears registered (as node {via} sees it)"),
            Duration::from_secs(30),
            || async { (self.view(via).await?.spears.len() == count).then_some(()) },
        )
        .await;
    }

    /// Waits (30 s at most) until node `via`'s cluster view has the gRPC address of every node
    /// of `ids` (announced: ticket may place users there, the server API reach them).
    pub async fn wait_announced(&self, via: u64, ids: &[u64]) {
        self.wait_for("the nodes announced", Duration::from_secs(30), || async {
            let view = self.view(via).await?;
            ids.iter()
                .all(|id| view.node(*id).is_some_and(|n| !n.grpc.is_empty()))
                .then_some(())
        })
        .await;
    }

    /// Polls `probe` every 50 ms until it yields a value; panics naming `what` at the deadline
    /// ([`crate::wait_for`]).
    pub async fn wait_for<T, F, Fut>(&self, what: &str, deadline: Duration, probe: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        crate::wait_for(what, deadline, probe).await
    }

    /// A control-plane client that knows every core node.
    pub fn client(&self) -> Arc<ClusterClient> {
        let seeds = self
            .core_ids()
            .iter()
            .map(|id| self.grpc_addr(*id))
            .collect();
        Arc::new(ClusterClient::new(
            seeds,
            self.tool_pool(),
            Duration::from_millis(1000),
            Duration::from_secs(5),
        ))
    }

    /// The internal gRPC address of node `id` as advertised (through its proxy, if any).
    pub fn grpc_addr(&self, id: u64) -> String {
        let node = &self.nodes[&id];
        match &node.proxy {
            Some(proxy) => proxy.addr().to_string(),
            None => SocketAddr::new(node.host, node.ports.grpc).to_string(),
        }
    }

    /// The socket.io address of node `id` (`host:port`).
    pub fn sio_addr(&self, id: u64) -> String {
        let node = &self.nodes[&id];
        SocketAddr::new(node.host, node.ports.sio).to_string()
    }

    /// Sets `key=value` in node `id`'s environment from its next start on (over the
    /// cluster's `env`): e.g. its own `GRU_REDIS__URL`.
    pub fn set_node_env(&mut self, id: u64, key: &str, value: &str) {
        let node = self.nodes.get_mut(&id).expect("known node");
        node.env.retain(|(k, _)| k != key);
        node.env.push((key.to_string(), value.to_string()));
    }

    /// The HTTP address of node `id`.
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        let node = &self.nodes[&id];
        SocketAddr::new(node.host, node.ports.http)
    }

    /// Node `id`'s admin surface (its HTTP address unless the surfaces are separate).
    pub fn admin_addr(&self, id: u64) -> SocketAddr {
        let node = &self.nodes[&id];
        SocketAddr::new(node.host, node.ports.admin)
    }

    /// Node `id`'s server API (its HTTP address unless the surfaces are separate).
    pub fn server_api_addr(&self, id: u64) -> SocketAddr {
        let node = &self.nodes[&id];
        SocketAddr::new(node.host, node.ports.server_api)
    }

    /// A control-plane client that only knows node `id` (no other seeds).
    pub fn client_of(&self, id: u64) -> Arc<ClusterClient> {
        Arc::new(ClusterClient::new(
            vec![self.grpc_addr(id)],
            self.tool_pool(),
            Duration::from_millis(1000),
            Duration::from_secs(5),
        ))
    }
}

impl TestNode {
    fn new(spec: NodeSpec, options: &ClusterOptions) -> Self {
        let http = ports::free_port();
        let own = || {
            if options.separate_surfaces {
                ports::free_port()
            } else {
                http
            }
        };
        let ports = Ports {
            grpc: ports::free_port(),
            http,
            sio: ports::free_port(),
            gossip: ports::free_port(),
            admin: own(),
            server_api: own(),
        };
        let (host, proxy) = if options.proxies {
            let host = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                10 + u8::try_from(spec.id).expect("small node id"),
            ));
            let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports::free_port());
            let proxy = proxy::FaultProxy::start(listen, SocketAddr::new(host, ports.grpc));
            (host, Some(proxy))
        } else {
            (IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        };
        Self {
            spec,
            ports,
            host,
            proxy,
            process: None,
            env: Vec::new(),
        }
    }
}

fn append_marker(path: &Path, marker: &str) {
    if let Ok(mut f) = OpenOptions::new().append(true).open(path) {
        use std::io::Write;
        // The Unix time lines the marker up with the node's own (UTC) log timestamps.
        let _ = writeln!(f, "{marker} at unix_ms={}", gru::clock::unix_ms());
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Every process is gone before the logs are read.
        for node in self.nodes.values_mut() {
            node.process = None;
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("test failed; cluster files kept in {}", kept.display());
                for id in self.nodes.keys() {
                    let path = kept.join(format!("node{id}.log"));
                    eprintln!(
                        "---- last lines of {} ----\n{}",
                        path.display(),
                        tail(&path, 40)
                    );
                }
            }
        }
    }
}

/// A node frozen by [`TestCluster::freeze`]: it runs again when this is dropped.
#[must_use = "the node runs again as soon as this is dropped"]
pub struct Frozen {
    pid: u32,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let thawed = std::process::Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !thawed && !std::thread::panicking() {
            panic!("kill -CONT {}", self.pid);
        }
    }
}
