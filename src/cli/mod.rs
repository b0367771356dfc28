//! Subcommands of `gru`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gru::config::{ClusterConfig, ListenAddrs, NodeId};

mod admin;
mod config_cmd;

use admin::{AdminDoor, ClusterAction, DoorArgs, DrainArgs, MetaAction};

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
        #[command(flatten)]
        door: DoorArgs,
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
        door: DoorArgs,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Drain a spear: ticket stops placing users on it, and its clients are told to reconnect
    /// through ticket a wave at a time; shows progress until it is empty.
    Drain(DrainArgs),
    /// Mint a token1 (what a business system gives its users) for development and tests.
    Token(TokenArgs),
    /// Make the cluster CA and a certificate for every node of the config (mutual TLS on the
    /// internal gRPC port), in its `[cluster_tls] dir`; files already there are kept.
    Certs {
        /// The cluster config.
        #[arg(long, env = "GRU_CONFIG", default_value = "cluster.toml")]
        config: PathBuf,
        /// Make the node and tool certificates again even where they exist (the CA is kept).
        #[arg(long)]
        renew: bool,
    },
    /// Read and write the replicated metadata store.
    Meta {
        #[command(flatten)]
        door: DoorArgs,
        #[command(subcommand)]
        action: MetaAction,
    },
    /// Print the tables of docs/config.md as the config's declarations generate them.
    Config(config_cmd::ConfigArgs),
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

/// Runs the chosen subcommand.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Run { config: path, node } => {
            let config = ClusterConfig::load(&path)?;
            serve(config, node, Some(path)).await
        }
        Command::Status {
            door,
            json,
            linearizable,
        } => {
            let door = AdminDoor::resolve(door, Duration::from_secs(10))?;
            admin::status(&door, json, linearizable).await
        }
        Command::Cluster { door, action } => {
            // Adding a core node waits for it to catch up: give the call a minute.
            let door = AdminDoor::resolve(door, Duration::from_secs(70))?;
            admin::cluster(&door, action).await
        }
        Command::Meta { door, action } => {
            let door = AdminDoor::resolve(door, Duration::from_secs(10))?;
            admin::meta(&door, action).await
        }
        Command::Drain(args) => admin::drain(args).await,
        Command::Token(args) => token(args),
        Command::Certs { config, renew } => certs(&config, renew),
        Command::Config(args) => config_cmd::run(args),
    }
}

async fn dev(args: DevArgs) -> Result<()> {
    let listen = ListenAddrs::dev(args.grpc, args.http, args.sio, args.gossip);
    let config = ClusterConfig::dev(args.data_dir.clone(), listen);
    config.validate()?;
    println!(
        "gru dev: one node with every role, data in {}",
        args.data_dir.display()
    );
    let (http, admin_key) = (args.http, gru::config::DEV_ADMIN_KEY);
    println!(
        "  every HTTP surface on http://{http} (loopback only), public, admin and server API:"
    );
    println!("  ticket        http://{http}/ticket");
    println!("  socket.io     http://{}", args.sio);
    println!("  dashboard     http://{http}/  (sign in with the admin key {admin_key})");
    println!("  playground    http://{http}/playground");
    println!("  cluster view  http://{http}/api/v1/cluster  (Authorization: Bearer {admin_key})");
    println!("  metrics       http://{http}/metrics  (the same key)");
    println!(
        "  server API    http://{http}/api/v1/publish  (Authorization: Bearer {})",
        gru::config::DEV_API_KEY
    );
    println!("  internal gRPC {} (cluster-only)", args.grpc);
    serve(config, DEV_NODE, None).await
}

/// Runs a node until SIGINT or SIGTERM. SIGHUP reads the listeners' TLS certificate again
/// (`http.tls_cert`); with a config file it also reloads the file and puts its `[auth]`
/// section in force (secret rotation without a restart); a file that no longer
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
                // The listeners' TLS certificate files are read again whatever the config says.
                handle.reload_tls();
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

fn certs(path: &std::path::Path, renew: bool) -> Result<()> {
    use gru::net::tls::{make_certs, Made};
    let config = ClusterConfig::load(path)?;
    let dir = &config.cluster_tls.dir;
    let ids: Vec<NodeId> = config.nodes.iter().map(|n| n.id).collect();
    let made = make_certs(dir, &ids, renew)?;
    for m in &made {
        match m {
            Made::Written(p) => println!("wrote {}", p.display()),
            Made::Kept(p) => println!("kept  {}", p.display()),
        }
    }
    println!(
        "each node needs ca.pem and its own node-<id>.pem and node-<id>.key from {}; keep ca.key \
         off the nodes (it signs new members)",
        dir.display()
    );
    if !config.cluster_tls.enabled {
        println!(
            "note: [cluster_tls] enabled = false in {}: the nodes will not use them",
            path.display()
        );
    }
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
