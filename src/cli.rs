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

/// gru: clustered long-connection messaging (socket.io spears, ticket, Raft control plane).
#[derive(Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Threads of the async runtime (default: one per CPU). Fewer save CPU when several busy
    /// processes share a small machine: every extra worker costs wake-ups between threads.
    #[arg(long, global = true, env = "GRU_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The runtime's worker threads: as set, else `None` (one per CPU).
    pub(crate) fn worker_threads(&self) -> Option<usize> {
        self.worker_threads.map(std::num::NonZeroUsize::get)
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
    /// Show the cluster as a node sees it: leader, term, members, log indexes, spears.
    Status {
        /// HTTP address of any node.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Print the JSON of GET /api/v1/cluster.
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
    serve(config, 1, None).await
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
    let url = format!("http://{addr}/api/v1/cluster?consistency={consistency}");
    let resp = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let code = resp.status();
    let body = resp.text().await.context("reading the reply")?;
    if !code.is_success() {
        bail!("{url} answered {code}: {body}");
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let view: ClusterView =
        serde_json::from_str(&body).context("the reply is not a cluster view")?;
    print_view(&view);
    Ok(())
}

fn print_view(view: &ClusterView) {
    let leader = view
        .leader_id
        .map_or("none".to_string(), |id| id.to_string());
    println!(
        "served by node {}; leader {leader}; term {}",
        view.served_by, view.term
    );
    println!(
        "{:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9}  {:<22} HTTP",
        "ID", "ROLES", "RAFT", "STATE", "TERM", "LAST_LOG", "APPLIED", "GRPC"
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
        let (state, term, last, applied) = match &n.status {
            Some(s) => (
                s.server_state.clone(),
                s.term.to_string(),
                s.last_log_index.to_string(),
                s.applied_index.to_string(),
            ),
            None if n.unreachable.is_some() => ("DOWN".into(), "-".into(), "-".into(), "-".into()),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9}  {:<22} {}",
            n.id, roles, raft, state, term, last, applied, n.grpc, n.http
        );
    }
    if view.spears.is_empty() {
        println!("spears: none registered");
    } else {
        println!("spears:");
        let now = gru::clock::unix_ms();
        for s in &view.spears {
            let left = s.expires_at_ms.saturating_sub(now);
            println!(
                "  {:<5} sio {:<22} http {:<22} lease {} ms left",
                s.id,
                s.sio.as_deref().unwrap_or("-"),
                s.http,
                left
            );
        }
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
