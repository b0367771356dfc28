//! Subcommands of `gru`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gru::config::{ClusterConfig, ListenAddrs, NodeId};
use gru::net::grpc::ClusterClient;
use gru::raft::{ClusterView, Member, RaftRole};

/// The one node of `gru dev` (`ClusterConfig::dev`).
const DEV_NODE: NodeId = 1;

/// gru: clustered long-connection messaging (socket.io spears, ticket, Raft control plane).
#[derive(Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Threads of the async runtime (default: one per CPU). Fewer save CPU when several busy
    /// processes share a small machine: every extra worker costs wake-ups between threads.
    #[arg(long, global = true, env = "GRU_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
    /// How log lines look on stderr: `human` (one line per event) or `json` (one JSON object
    /// per line). Either way every line of `run` and `dev` names the node.
    #[arg(long, global = true, env = "GRU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The `--log-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// tracing's full text format.
    Human,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The runtime's worker threads: as set, else `None` (one per CPU).
    pub(crate) fn worker_threads(&self) -> Option<usize> {
        self.worker_threads.map(std::num::NonZeroUsize::get)
    }

    /// How to write log lines.
    pub(crate) fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The node this process runs (`gru dev` is node 1); `None` for the client subcommands.
    pub(crate) fn node_id(&self) -> Option<NodeId> {
        match &self.command {
            Command::Run { node, .. } => Some(*node),
            Command::Dev(_) => Some(DEV_NODE),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: every role, a single-node Raft, no Redis.
    Dev(DevArgs),
    /// Run one node of a cluster described by a config file.
    Run {
        /// The cluster config.
        #[arg(long, env = "GRU_CONFIG", default_value = "cluster.toml")]
        config: PathBuf,
        /// Which node of the config this process is.
        #[arg(long, env = "GRU_NODE")]
        node: NodeId,
    },
    /// Show the cluster as a node sees it: leader (marked *), term, members with their lag,
    /// spears with their connections. Exits 1 when the cluster has no leader.
    Status {
        /// HTTP address of any node.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Print JSON instead: `{"cluster": GET /api/v1/cluster, "spears": [GET /api/v1/spear
        /// of each spear, or {"node_id", "error"}]}`.
        #[arg(long)]
        json: bool,
        /// Ask the leader, after it confirmed its leadership with a quorum.
        #[arg(long)]
        linearizable: bool,
    },
    /// Change the Raft membership at runtime.
    Cluster {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Drain a spear: ticket stops placing users on it, and its clients are told to reconnect
    /// through ticket a wave at a time; shows progress until it is empty.
    Drain(DrainArgs),
    /// Mint a token1 (what a business system gives its users) for development and tests.
    Token(TokenArgs),
    /// Read and write the replicated metadata store.
    Meta {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: MetaAction,
    },
}

#[derive(clap::Args)]
struct DrainArgs {
    #[command(flatten)]
    target: Target,
    /// The spear's node id (a node of the config with the spear role).
    #[arg(long)]
    node: NodeId,
    /// Connections told to leave per wave.
    #[arg(long, default_value_t = 100)]
    wave: u32,
    /// Time between waves, in ms (at most 60000).
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
    /// Take users again instead (clients already moved stay where they are).
    #[arg(long, conflicts_with_all = ["no_wait"])]
    stop: bool,
    /// Start the drain and return at once instead of showing progress until it is empty.
    #[arg(long)]
    no_wait: bool,
    /// Stop waiting after this many seconds (exit status 1); the drain itself goes on.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Sign with the secrets of `gru dev` instead of a config file's.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// The cluster config whose `auth.business_secret` signs the token.
    #[arg(long, env = "GRU_CONFIG")]
    config: Option<PathBuf>,
    /// The user id.
    #[arg(long)]
    user: u64,
    /// The user's display name.
    #[arg(long)]
    name: String,
    /// The client application type.
    #[arg(long, default_value = "web")]
    app: String,
    /// Lifetime in seconds (default: the config's `auth.token_ttl_secs`).
    #[arg(long)]
    ttl_secs: Option<u64>,
    /// Groups the user may join, comma-separated (default: unrestricted).
    #[arg(long, value_delimiter = ',')]
    groups: Option<Vec<u64>>,
    /// Print Gru's legacy MD5 token1 instead (no expiry; needs `auth.legacy_md5`).
    #[arg(long)]
    legacy: bool,
}

#[derive(clap::Args)]
struct DevArgs {
    /// Where the single node keeps its Raft data.
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// Public HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Internal gRPC address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    grpc: SocketAddr,
    /// socket.io address.
    #[arg(long, default_value = "127.0.0.1:31001")]
    sio: SocketAddr,
    /// Gossip address.
    #[arg(long, default_value = "127.0.0.1:7946")]
    gossip: SocketAddr,
}

/// Where admin commands send their requests.
#[derive(clap::Args)]
struct Target {
    /// The cluster config: its core nodes are the addresses tried.
    #[arg(long, env = "GRU_CONFIG", default_value = "cluster.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Add a core node of the config: learner, catch up, voter. Returns once it votes.
    AddCore {
        /// The node id (must be in the config, with the core role).
        #[arg(long)]
        node: NodeId,
    },
    /// Remove a node from the Raft membership and the member table.
    Remove {
        /// The node id.
        #[arg(long)]
        node: NodeId,
    },
}

#[derive(Subcommand)]
enum MetaAction {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print one key, or every entry.
    Get {
        /// The key; all entries when omitted.
        key: Option<String>,
        /// Read through the leader after confirming leadership.
        #[arg(long)]
        linearizable: bool,
    },
}

/// Runs the chosen subcommand.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Run { config: path, node } => {
            let config = ClusterConfig::load(&path)?;
            serve(config, node, Some(path)).await
        }
        Command::Status {
            addr,
            json,
            linearizable,
        } => status(&addr, json, linearizable).await,
        Command::Cluster { target, action } => cluster(target, action).await,
        Command::Meta { target, action } => meta(target, action).await,
        Command::Drain(args) => drain(args).await,
        Command::Token(args) => token(args),
    }
}

async fn dev(args: DevArgs) -> Result<()> {
    let listen = ListenAddrs {
        grpc: args.grpc,
        http: args.http,
        sio: Some(args.sio),
        gossip: args.gossip,
    };
    let config = ClusterConfig::dev(args.data_dir.clone(), listen);
    config.validate()?;
    println!(
        "gru dev: one node with every role, data in {}",
        args.data_dir.display()
    );
    println!("  HTTP API      http://{}/healthz", args.http);
    println!("  cluster view  http://{}/api/v1/cluster", args.http);
    println!("  metrics       http://{}/metrics", args.http);
    println!("  ticket        http://{}/ticket", args.http);
    println!("  socket.io     http://{}", args.sio);
    println!("  dashboard     http://{}/", args.http);
    println!("  playground    http://{}/playground", args.http);
    println!(
        "  server API    http://{}/api/v1/publish  (Authorization: Bearer {})",
        args.http,
        gru::config::DEV_API_KEY
    );
    println!("  internal gRPC {} (cluster-only)", args.grpc);
    serve(config, DEV_NODE, None).await
}

/// Runs a node until SIGINT or SIGTERM. With a config file, SIGHUP reloads it and puts its
/// `[auth]` section in force (secret rotation without a restart); a file that no longer
/// loads is refused with its error and the node carries on unchanged.
async fn serve(config: ClusterConfig, node: NodeId, path: Option<PathBuf>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut running = config;
    let handle = gru::node::start_node(running.clone(), node).await?;
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r.context("cannot listen for SIGINT")?; break }
            _ = term.recv() => break,
            _ = hup.recv() => {
                let Some(path) = &path else {
                    tracing::info!("SIGHUP ignored: gru dev has no config file to reload");
                    continue;
                };
                match ClusterConfig::load(path) {
                    Ok(fresh) => {
                        handle.reload_auth(&fresh.auth);
                        let others_changed = ClusterConfig {
                            auth: running.auth.clone(),
                            ..fresh.clone()
                        } != running;
                        if others_changed {
                            tracing::warn!(
                                "the reloaded config changes more than [auth]; only [auth] is \
                                 applied now, the rest needs a restart"
                            );
                        }
                        running = fresh;
                    }
                    Err(e) => tracing::error!(error = %e, "config not reloaded"),
                }
            }
        }
    }
    tracing::info!("signal received; shutting down");
    handle.shutdown().await;
    Ok(())
}

fn token(args: TokenArgs) -> Result<()> {
    use gru::services::auth::{legacy, Claims, TokenKey, TokenKind};
    let config = match (&args.config, args.dev) {
        (_, true) => ClusterConfig::dev("data/dev".into(), ListenAddrs::dev_default()),
        (Some(path), false) => ClusterConfig::load(path)?,
        (None, false) => bail!("give --config FILE, or --dev for the secrets of `gru dev`"),
    };
    if args.legacy {
        println!(
            "{}",
            legacy::token1(
                args.user,
                &args.name,
                &args.app,
                &config.auth.business_secret
            )
        );
        return Ok(());
    }
    let ttl = args.ttl_secs.unwrap_or(config.auth.token_ttl_secs);
    let now = gru::clock::unix_ms() / 1000;
    let key = TokenKey::new(TokenKind::Business, config.auth.business_secret.as_bytes());
    println!(
        "{}",
        key.sign(Claims {
            typ: TokenKind::Business,
            uid: args.user,
            name: args.name,
            app: args.app,
            exp: now + ttl,
            groups: args.groups,
            spears: None,
        })
    );
    Ok(())
}

async fn status(addr: &str, json: bool, linearizable: bool) -> Result<()> {
    let consistency = if linearizable {
        "linearizable"
    } else {
        "local"
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let url = format!("http://{addr}/api/v1/cluster?consistency={consistency}");
    let resp = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let code = resp.status();
    let body = resp.text().await.context("reading the reply")?;
    if !code.is_success() {
        bail!("{url} answered {code}: {body}");
    }
    let view: ClusterView =
        serde_json::from_str(&body).context("the reply is not a cluster view")?;
    // Each spear's own counts, asked of it at once (a spear that does not answer shows why).
    let spears = futures_util::future::join_all(view.spears.iter().map(|s| {
        let (http, url) = (&http, format!("http://{}/api/v1/spear", s.http));
        async move {
            let answer = async {
                let resp = http
                    .get(&url)
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await?;
                resp.error_for_status()?.json::<serde_json::Value>().await
            }
            .await;
            (s.id, answer.map_err(|e| e.to_string()))
        }
    }))
    .await;
    if json {
        let spears: Vec<serde_json::Value> = spears
            .into_iter()
            .map(|(id, answer)| match answer {
                Ok(a) => a,
                Err(e) => serde_json::json!({"node_id": id, "error": e}),
            })
            .collect();
        let out = serde_json::json!({"cluster": view, "spears": spears});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_view(&view, &spears);
    }
    if view.leader_id.is_none() {
        bail!(
            "the cluster has no leader (as node {} sees it)",
            view.served_by
        );
    }
    Ok(())
}

/// A spear's own answer to `GET /api/v1/spear`, or why there is none.
type SpearAnswer = (NodeId, Result<serde_json::Value, String>);

fn print_view(view: &ClusterView, spears: &[SpearAnswer]) {
    let leader = view
        .leader_id
        .map_or("none".to_string(), |id| id.to_string());
    println!(
        "served by node {}; leader {leader}; term {}",
        view.served_by, view.term
    );
    // Lag: entries the leader has that a member has not applied yet.
    let leader_last = view
        .nodes
        .iter()
        .find(|n| Some(n.id) == view.leader_id)
        .and_then(|n| n.status.as_ref())
        .map(|s| s.last_log_index);
    println!(
        "  {:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9} {:>5}  {:<22} HTTP",
        "ID", "ROLES", "RAFT", "STATE", "TERM", "LAST_LOG", "APPLIED", "LAG", "GRPC"
    );
    for n in &view.nodes {
        let roles = n
            .roles
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let raft = match n.raft {
            RaftRole::Voter => "voter",
            RaftRole::Learner => "learner",
            RaftRole::None => "-",
        };
        let dash = || "-".to_string();
        let (state, term, last, applied, lag) = match &n.status {
            Some(s) => (
                s.server_state.clone(),
                s.term.to_string(),
                s.last_log_index.to_string(),
                s.applied_index.to_string(),
                leader_last.map_or_else(dash, |l| l.saturating_sub(s.applied_index).to_string()),
            ),
            None if n.unreachable.is_some() => ("DOWN".into(), dash(), dash(), dash(), dash()),
            None => (dash(), dash(), dash(), dash(), dash()),
        };
        let mark = if Some(n.id) == view.leader_id {
            "*"
        } else {
            " "
        };
        println!(
            "{mark} {:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9} {:>5}  {:<22} {}",
            n.id, roles, raft, state, term, last, applied, lag, n.grpc, n.http
        );
    }
    if view.spears.is_empty() {
        println!("spears: none registered");
        return;
    }
    println!("spears:");
    println!(
        "  {:<5} {:<22} {:>11} {:>7} {:>7} {:<9} {:>9}",
        "ID", "SIO", "CONNECTIONS", "USERS", "GROUPS", "STATE", "LEASE_MS"
    );
    let now = gru::clock::unix_ms();
    for s in &view.spears {
        let left = s.expires_at_ms.saturating_sub(now);
        let answer = spears.iter().find(|(id, _)| *id == s.id).map(|(_, a)| a);
        let count =
            |a: &serde_json::Value, k: &str| a[k].as_u64().map_or("?".into(), |n| n.to_string());
        let (conns, users, groups, state) = match answer {
            Some(Ok(a)) => (
                count(a, "connections"),
                count(a, "users"),
                count(a, "groups"),
                if a["draining"] == true {
                    "draining"
                } else {
                    "serving"
                }
                .to_string(),
            ),
            Some(Err(e)) => (
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreachable: {e}"),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "  {:<5} {:<22} {:>11} {:>7} {:>7} {:<9} {:>9}",
            s.id,
            s.sio.as_deref().unwrap_or("-"),
            conns,
            users,
            groups,
            state,
            left
        );
    }
}

fn admin_client(config: &ClusterConfig) -> Arc<ClusterClient> {
    // Adding a core node waits for it to catch up: give admin calls a minute.
    Arc::new(ClusterClient::for_cluster(config, Duration::from_secs(60)))
}

async fn cluster(target: Target, action: ClusterAction) -> Result<()> {
    let config = ClusterConfig::load(&target.config)?;
    let client = admin_client(&config);
    match action {
        ClusterAction::AddCore { node } => {
            let n = config.node(node)?;
            if !n.is_core() {
                bail!(
                    "node {node} does not have the core role in {}",
                    target.config.display()
                );
            }
            eprintln!("adding node {node}: learner, catching up, then voter …");
            client.join_core((&Member::from_config(n)).into()).await?;
            println!("node {node} is a voter");
        }
        ClusterAction::Remove { node } => {
            client.remove_node(node).await?;
            println!("node {node} removed");
        }
    }
    Ok(())
}

/// How often `gru drain` reports progress.
const DRAIN_POLL: Duration = Duration::from_millis(500);

async fn drain(args: DrainArgs) -> Result<()> {
    use gru::net::grpc::pb::{drain_request::Action, DrainRequest};
    let config = ClusterConfig::load(&args.target.config)?;
    let node = config.node(args.node)?;
    if !node.has_role(gru::config::Role::Spear) {
        bail!(
            "node {} does not have the spear role in {}",
            args.node,
            args.target.config.display()
        );
    }
    let addr = node.advertised_grpc();
    let client = ClusterClient::for_cluster(&config, Duration::from_secs(10));
    let ask = |action: Action| DrainRequest {
        action: action.into(),
        wave: args.wave,
        every_ms: args.every_ms,
    };
    let call = |req| {
        let (client, addr) = (&client, &addr);
        async move {
            client
                .drain(addr, req)
                .await
                .with_context(|| format!("spear {} at {addr}", args.node))
        }
    };
    if args.stop {
        let reply = call(ask(Action::Stop)).await?;
        println!(
            "spear {} takes users again ({} connections)",
            args.node, reply.connections
        );
        return Ok(());
    }
    let first = call(ask(Action::Start)).await?;
    println!(
        "draining spear {}: ticket places no users on it; {} connections, {} per wave every {} ms",
        args.node, first.connections, args.wave, args.every_ms
    );
    if args.no_wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last = None;
    loop {
        let reply = call(ask(Action::Status)).await?;
        if !reply.draining {
            bail!("the drain of spear {} was stopped", args.node);
        }
        if last != Some(reply.connections) {
            println!(
                "spear {}: {} connections left, {} told to leave",
                args.node, reply.connections, reply.moved
            );
            last = Some(reply.connections);
        }
        if reply.connections == 0 {
            println!(
                "spear {} is drained; it takes no users until it restarts or `gru drain --stop`",
                args.node
            );
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "spear {} still has {} connections after {} s (the drain goes on)",
                args.node,
                reply.connections,
                args.timeout_secs
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

async fn meta(target: Target, action: MetaAction) -> Result<()> {
    let config = ClusterConfig::load(&target.config)?;
    let client = admin_client(&config);
    match action {
        MetaAction::Put { key, value } => {
            client.put_meta(&key, &value).await?;
            println!("ok");
        }
        MetaAction::Get { key, linearizable } => {
            let entries = client.get_meta(key.as_deref(), linearizable).await?;
            if entries.is_empty() && key.is_some() {
                bail!("no such key");
            }
            for (k, v) in entries {
                println!("{k}\t{v}");
            }
        }
    }
    Ok(())
}
