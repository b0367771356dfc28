//! Subcommands of `gru`.

use std::net::{SocketAddr, ToSocketAddrs};
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

/// The config file `run` and `certs` read when none is given.
const DEFAULT_CONFIG: &str = "cluster.toml";

/// gru: clustered long-connection messaging (socket.io spears, ticket, Raft control plane).
#[derive(Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// The cluster config, for every subcommand but `dev` (each also takes `--config` after
    /// its name, which wins).
    #[arg(long, env = "GRU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Whether `config` was given on the command line (not by `GRU_CONFIG`).
    #[arg(skip)]
    config_given: bool,
    #[command(subcommand)]
    command: Command,
}

/// The options of the subcommands that run a node (`run`, `dev`).
#[derive(clap::Args)]
struct ServeArgs {
    /// Threads of the async runtime (default: one per CPU). Fewer save CPU when several busy
    /// processes share a small machine: every extra worker costs wake-ups between threads.
    #[arg(long, env = "GRU_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
    /// How log lines look on stderr: `human` (one line per event) or `json` (one JSON object
    /// per line). Either way every line names the node.
    #[arg(long, env = "GRU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

/// Parses the command line (exits with clap's message on a bad one).
pub(crate) fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.config_given =
        matches.value_source("config") == Some(clap::parser::ValueSource::CommandLine);
    cli
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
    /// The options of a node the subcommand runs; `None` for the client subcommands.
    fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Command::Run { serve, .. } | Command::Dev(DevArgs { serve, .. }) => Some(serve),
            _ => None,
        }
    }

    /// The runtime's worker threads: as set, else `None` (one per CPU).
    pub(crate) fn worker_threads(&self) -> Option<usize> {
        self.serve_args()
            .and_then(|s| s.worker_threads)
            .map(std::num::NonZeroUsize::get)
    }

    /// How to write log lines (the client subcommands: `human`).
    pub(crate) fn log_format(&self) -> LogFormat {
        self.serve_args().map_or(LogFormat::Human, |s| s.log_format)
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
        /// The cluster config (default: `GRU_CONFIG`, else cluster.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which node of the config this process is.
        #[arg(long, env = "GRU_NODE")]
        node: NodeId,
        #[command(flatten)]
        serve: ServeArgs,
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
        /// The cluster config (default: `GRU_CONFIG`, else cluster.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
    /// The cluster config whose `auth.business_secret` signs the token (default: `GRU_CONFIG`).
    #[arg(long, value_name = "FILE")]
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
    /// Print Gru's legacy MD5 token1 instead (no expiry; needs `auth.legacy_md5`, so not with
    /// `--dev`).
    #[arg(long)]
    legacy: bool,
}

#[derive(clap::Args)]
struct DevArgs {
    /// Where the single node keeps its Raft data.
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// Public HTTP address, `host:port` (a name such as localhost is resolved).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = socket_addr)]
    http: SocketAddr,
    /// Internal gRPC address.
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = socket_addr)]
    grpc: SocketAddr,
    /// socket.io address.
    #[arg(long, default_value = "127.0.0.1:31001", value_parser = socket_addr)]
    sio: SocketAddr,
    /// Gossip address.
    #[arg(long, default_value = "127.0.0.1:7946", value_parser = socket_addr)]
    gossip: SocketAddr,
    #[command(flatten)]
    serve: ServeArgs,
}

/// `host:port` as one socket address: an IP address as it is, a name resolved to its first
/// IPv4 address if it has one (`localhost:8080` is 127.0.0.1:8080), else its first address.
fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let all: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("not an address host:port ({e})"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// Runs the chosen subcommand.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    // A `--config` after the subcommand wins over one before it, which wins over GRU_CONFIG.
    let (top, top_given) = (cli.config, cli.config_given);
    let file = |given: Option<PathBuf>| given.or_else(|| top.clone());
    let or_default = |given| file(given).unwrap_or_else(|| DEFAULT_CONFIG.into());
    match cli.command {
        Command::Dev(args) => {
            if top_given {
                bail!("gru dev reads no config file: leave out --config");
            }
            dev(args).await
        }
        Command::Run { config, node, .. } => {
            let path = or_default(config);
            let config = ClusterConfig::load(&path)?;
            let handle = gru::node::start_node(config.clone(), node).await?;
            until_stopped(handle, config, Some(path)).await
        }
        Command::Status {
            door,
            json,
            linearizable,
        } => {
            let door = AdminDoor::resolve(door.or_config(top), Duration::from_secs(10))?;
            admin::status(&door, json, linearizable).await
        }
        Command::Cluster { door, action } => {
            // Adding a core node waits for it to catch up: give the call a minute.
            let door = AdminDoor::resolve(door.or_config(top), Duration::from_secs(70))?;
            admin::cluster(&door, action).await
        }
        Command::Meta { door, action } => {
            let door = AdminDoor::resolve(door.or_config(top), Duration::from_secs(10))?;
            admin::meta(&door, action).await
        }
        Command::Drain(args) => admin::drain(args.or_config(top)).await,
        Command::Token(mut args) => {
            if args.dev && top_given {
                bail!("--dev signs with the secrets of `gru dev`: leave out --config");
            }
            if !args.dev {
                args.config = file(args.config);
            }
            token(args)
        }
        Command::Certs { config, renew } => certs(&or_default(config), renew),
        Command::Config(args) => config_cmd::run(args),
    }
}

async fn dev(args: DevArgs) -> Result<()> {
    let listen = ListenAddrs::dev(args.grpc, args.http, args.sio, args.gossip);
    let config = ClusterConfig::dev(args.data_dir.clone(), listen).with_env_overrides()?;
    config.validate()?;
    // The banner only once every port is bound and the node runs: what it lists answers.
    let handle = gru::node::start_node(config.clone(), DEV_NODE).await?;
    println!(
        "gru dev: one node with every role, data in {}",
        args.data_dir.display()
    );
    let (http, admin_key) = (handle.http_addr(), gru::config::DEV_ADMIN_KEY);
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
    println!(
        "  internal gRPC {} (cluster-only)",
        handle.grpc_addr().unwrap_or(args.grpc)
    );
    until_stopped(handle, config, None).await
}

/// Keeps a started node running until SIGINT or SIGTERM. SIGHUP reads the listeners' TLS
/// certificate again (`http.tls_cert`); with a config file it also reloads the file and puts
/// its `[auth]` section in force (secret rotation without a restart); a file that no longer
/// loads is refused with its error and the node carries on unchanged.
async fn until_stopped(
    handle: gru::node::NodeHandle,
    config: ClusterConfig,
    path: Option<PathBuf>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut running = config;
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
    if args.legacy && !config.auth.legacy_md5 {
        match &args.config {
            // gru dev's secrets are fixed: its ticket refuses every legacy token.
            _ if args.dev => bail!(
                "legacy tokens are off in gru dev (auth.legacy_md5 = false): leave out --legacy"
            ),
            // A config may turn them on later (a reload of [auth]): mint, but say so.
            Some(path) => eprintln!(
                "note: auth.legacy_md5 = false in {}: ticket refuses this token until it is on",
                path.display()
            ),
            None => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::{socket_addr, Cli};

    /// clap's own checks of the definition (names, globals, conflicts).
    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn a_listen_address_may_name_its_host() {
        assert_eq!(
            socket_addr("127.0.0.1:8080"),
            Ok(([127, 0, 0, 1], 8080).into())
        );
        assert_eq!(
            socket_addr("[::1]:8080"),
            Ok("[::1]:8080".parse().expect("addr"))
        );
        assert_eq!(
            socket_addr("localhost:8080"),
            Ok(([127, 0, 0, 1], 8080).into())
        );
        assert!(socket_addr("localhost").is_err(), "a port is required");
        assert!(socket_addr("127.0.0.1:http").is_err());
    }
}
