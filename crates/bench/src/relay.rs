//! `gru-bench relay`: messages between two spears through Redis, against gru and against a
//! Node peer (socket.io 4.8 with `@socket.io/redis-adapter` 8, `crates/bench/peer/`), in one
//! run.
//! Each target gets a private `redis-server` and two servers; senders connect to spear A,
//! receivers to spear B. Unicast runs at rising open-loop rates, then one group with many
//! members over both spears. Reports delivered messages, send → receive latency and the
//! servers' CPU time per delivered message as Markdown (`docs/PERFORMANCE.md`).

mod client;
mod procs;
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

/// Which systems `gru-bench relay` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// gru only.
    Gru,
    /// The Node peer only.
    Peer,
    /// gru, then the peer, in the same run.
    Both,
}

/// What `gru-bench relay` measures.
#[derive(clap::Args)]
pub(crate) struct RelayBench {
    /// The system(s) under test.
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
    if args.target != Which::Peer {
        eprintln!("gru servers: {}", gru_bin.path().display());
    }
    let targets: &[&'static str] = match args.target {
        Which::Gru => &["gru"],
        Which::Peer => &["peer"],
        Which::Both => &["gru", "peer"],
    };
    let ticks = stats::clock_ticks() as f64;
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
    report::print_report(args, &results);
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Runs the unicast ladder and then the fan-out against one target, each on freshly started
/// servers and Redis: an overloaded unicast step leaves no backlog (or dead server) behind for
/// the fan-out.
async fn bench_target(
    target: &'static str,
    args: &RelayBench,
    gru_bin: &GruBin,
    ticks: f64,
) -> Result<Vec<StepResult>> {
    // Removed on success; a failed run keeps it, since its logs explain the failure.
    let scratch = tempfile::Builder::new()
        .prefix(&format!("gru-bench-relay-{target}-"))
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
            let servers = match target {
                "gru" => {
                    procs::start_gru(&dir, gru_bin, &args.gru_idgen, args.gru_worker_threads)
                        .await?
                }
                _ => procs::start_peer(&dir, &args.peer_dir).await?,
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
