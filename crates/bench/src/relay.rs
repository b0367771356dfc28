//! `gru-bench relay`: messages between two spears, in one run against gru with its Redis relay,
//! gru with its RocketMQ relay, and a Node peer (socket.io 4.8 with `@socket.io/redis-adapter`
//! 8, `crates/bench/peer/`).
//! Each target gets its own private `redis-server` and two servers; gru with the RocketMQ relay
//! also gets a RocketMQ name server and broker (from the test kit), which carry the messages
//! while Redis only holds the routes. Senders connect to spear A, receivers to spear B.
//! Unicast runs at rising open-loop rates, then one group with many members over both spears.
//! Reports delivered messages, send → receive latency and the CPU time per delivered message
//! of everything the target needs to run (its two servers, Redis and, for RocketMQ, the broker
//! and name server) as Markdown (`bench/results/relay.md`).

pub(crate) mod client;
pub(crate) mod procs;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use gru::services::auth::{TokenKey, TokenKind};
use gru_testkit::GruBin;

use scenarios::Bench;
use stats::{Counters, StepResult};

/// Which systems `gru-bench relay` measures (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// gru with the Redis relay (`relay.kind = "redis"`) only.
    Gru,
    /// gru with the RocketMQ relay (`relay.kind = "rocketmq"`) only: needs a gru built with
    /// `--features rocketmq` and the RocketMQ binaries the test kit runs.
    GruRocketmq,
    /// The Node peer (socket.io with the Redis adapter) only.
    Peer,
    /// gru with the Redis relay, then the peer, in the same run.
    Both,
    /// gru with the Redis relay, gru with the RocketMQ relay, then the peer, in the same run.
    All,
    /// gru with the Redis relay and history (the default), the same without history
    /// (`history.enabled = false`), then the peer: the cost of durability, in one run.
    History,
    /// gru with the Redis relay and metrics off (`metrics.enabled = false`), then the same
    /// with metrics on (the default): the cost of metrics, in one run.
    Metrics,
    /// The same two in the other order (metrics on first), so that an A/B can alternate and
    /// an effect of going first or second shows.
    MetricsOnFirst,
    /// gru with the Redis relay on each WebSocket transport (`spear.websocket`: gru's own,
    /// then socketioxide's), then the peer, in the same run.
    Transports,
}

impl Which {
    /// The targets to run, in order.
    fn targets(self) -> &'static [Target] {
        match self {
            Which::Gru => &[Target::Gru],
            Which::GruRocketmq => &[Target::GruRocketMq],
            Which::Peer => &[Target::Peer],
            Which::Both => &[Target::Gru, Target::Peer],
            Which::All => &[Target::Gru, Target::GruRocketMq, Target::Peer],
            Which::History => &[Target::Gru, Target::GruNoHistory, Target::Peer],
            Which::Metrics => &[Target::GruNoMetrics, Target::Gru],
            Which::MetricsOnFirst => &[Target::Gru, Target::GruNoMetrics],
            Which::Transports => &[Target::Gru, Target::GruSocketioxide, Target::Peer],
        }
    }
}

/// One system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// gru, messages relayed through Redis pub/sub, each kept in its channel's history first.
    Gru,
    /// gru, messages relayed through Redis pub/sub, without history.
    GruNoHistory,
    /// gru, messages relayed through Redis pub/sub, with metrics off.
    GruNoMetrics,
    /// gru, messages relayed through Redis pub/sub, direct WebSocket sessions on socketioxide
    /// (`spear.websocket = "socketioxide"`; every other gru target uses gru's own).
    GruSocketioxide,
    /// gru, messages relayed through a RocketMQ broker, routes in Redis.
    GruRocketMq,
    /// The Node peer, messages relayed through Redis pub/sub.
    Peer,
}

impl Target {
    /// A name without spaces, for file names.
    fn slug(self) -> &'static str {
        match self {
            Target::Gru => "gru",
            Target::GruNoHistory => "gru-no-history",
            Target::GruNoMetrics => "gru-no-metrics",
            Target::GruSocketioxide => "gru-socketioxide",
            Target::GruRocketMq => "gru-rocketmq",
            Target::Peer => "peer",
        }
    }

    /// The relay of gru's spears; `None` for the peer.
    fn gru_relay(self) -> Option<procs::GruRelay> {
        match self {
            Target::Gru | Target::GruNoHistory | Target::GruNoMetrics | Target::GruSocketioxide => {
                Some(procs::GruRelay::Redis)
            }
            Target::GruRocketMq => Some(procs::GruRelay::RocketMq),
            Target::Peer => None,
        }
    }
}

impl std::fmt::Display for Target {
    /// The label of the report's rows and columns: the system and what carries its messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Gru => "gru (redis)",
            Target::GruNoHistory => "gru (redis, no history)",
            Target::GruNoMetrics => "gru (redis, no metrics)",
            Target::GruSocketioxide => "gru (redis, socketioxide ws)",
            Target::GruRocketMq => "gru (rocketmq)",
            Target::Peer => "peer (redis)",
        })
    }
}

/// What `gru-bench relay` measures.
#[derive(clap::Args)]
pub(crate) struct RelayBench {
    /// The system(s) under test, one after the other, each on servers of its own.
    #[arg(long, value_enum, default_value = "both")]
    target: Which,
    /// Unicast rates to offer, messages per second over all senders (open loop).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,5000,10000,20000,40000"
    )]
    rates: Vec<u64>,
    /// Seconds of sending per step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Sender/receiver connection pairs of the unicast runs (sender i sends to receiver i).
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Members of the fan-out group, half on each spear.
    #[arg(long, default_value_t = 10_000)]
    fanout_members: usize,
    /// Group messages per second of the fan-out runs (each reaches every member).
    #[arg(long, value_delimiter = ',', default_value = "5,10,20")]
    fanout_rate: Vec<u64>,
    /// The peer's directory (server.js, package.json, package-lock.json); by default the one
    /// beside the benchmark's sources.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peer"))]
    peer_dir: PathBuf,
    /// The gru binary whose `gru run` serves the spears (default: `GRU_BIN`, else the `gru`
    /// next to this executable, e.g. target/release/gru).
    #[arg(long)]
    gru_bin: Option<PathBuf>,
    /// gru's `idgen.mode`: "strict" (the default: spear A asks the Raft leader, node 1, for
    /// every message id over gRPC) or "unique" (each spear issues snowflake ids itself).
    #[arg(long, default_value = "strict", value_parser = ["strict", "unique"])]
    gru_idgen: String,
    /// Runtime threads of each gru server (`gru run --worker-threads`); 0 = gru's default, one
    /// per CPU. The default, 1, matches the peer: each Node server runs one event-loop thread.
    #[arg(long, default_value_t = 1)]
    gru_worker_threads: usize,
    /// Put receivers and every fan-out member on spear A too: no message crosses Redis
    /// (a baseline of one server alone).
    #[arg(long)]
    same_spear: bool,
}

/// Runs the benchmark; Ctrl-C or SIGTERM stops it and, through the guards, every child.
pub(crate) async fn run(args: RelayBench) -> Result<()> {
    if args.rates.is_empty() || args.rates.contains(&0) || args.pairs == 0 || args.seconds == 0 {
        bail!("--rates, --pairs and --seconds must be positive");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = run_all(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers were stopped"),
        _ = term.recv() => bail!("terminated; the servers were stopped"),
    }
}

/// Runs each chosen target in turn, prints the report, and fails if any target failed.
async fn run_all(args: &RelayBench) -> Result<()> {
    let gru_bin = match &args.gru_bin {
        Some(path) => GruBin::at(path),
        None => GruBin::locate()?,
    };
    let targets = args.target.targets();
    if targets.iter().any(|t| t.gru_relay().is_some()) {
        eprintln!("gru servers: {}", gru_bin.path().display());
    }
    let ticks = crate::cpu::clock_ticks() as f64;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for &target in targets {
        eprintln!("== {target}");
        match bench_target(target, args, &gru_bin, ticks).await {
            Ok(r) => results.extend(r),
            Err(e) => {
                eprintln!("{target}: {e:#}");
                failures.push(format!("{target}: {e:#}"));
            }
        }
    }
    report::print_report(args, targets, &results);
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Runs the unicast ladder and then the fan-out against one target, each on freshly started
/// servers and Redis: an overloaded unicast step leaves no backlog (or dead server) behind for
/// the fan-out.
async fn bench_target(
    target: Target,
    args: &RelayBench,
    gru_bin: &GruBin,
    ticks: f64,
) -> Result<Vec<StepResult>> {
    // Removed on success; a failed run keeps it, since its logs explain the failure.
    let scratch = tempfile::Builder::new()
        .prefix(&format!("gru-bench-relay-{}-", target.slug()))
        .tempdir()
        .context("cannot create a scratch directory")?;
    let result = async {
        let mut results = Vec::new();
        let fanout = args.fanout_members > 0 && !args.fanout_rate.is_empty();
        for phase in ["unicast", "fan-out"] {
            if phase == "fan-out" && !fanout {
                continue;
            }
            let dir = scratch.path().join(phase);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let servers = match target.gru_relay() {
                Some(relay) => {
                    procs::start_gru(
                        &dir,
                        gru_bin,
                        relay,
                        &args.gru_idgen,
                        args.gru_worker_threads,
                        procs::Toggles {
                            history: target != Target::GruNoHistory,
                            metrics: target != Target::GruNoMetrics,
                            websocket: if target == Target::GruSocketioxide {
                                "socketioxide"
                            } else {
                                "gru"
                            },
                        },
                    )
                    .await?
                }
                None => procs::start_peer(&dir, &args.peer_dir).await?,
            };
            eprintln!(
                "{target} {phase}: spear A {}, spear B {}",
                servers.a, servers.b
            );
            let mut bench = Bench {
                target,
                args,
                servers,
                counters: Arc::new(Counters::new()),
                key: TokenKey::new(TokenKind::Spear, procs::SPEAR_SECRET.as_bytes()),
                ticks,
            };
            results.extend(match phase {
                "unicast" => bench.unicast().await?,
                _ => bench.fanout().await?,
            });
        }
        Ok(results)
    }
    .await;
    if result.is_err() {
        eprintln!("{target}: logs kept in {}", scratch.keep().display());
    }
    result
}
