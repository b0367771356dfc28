//! `gru-bench`: gru's benchmarks, kept out of the service's binary. `idgen` measures a
//! running cluster; `relay` starts its own Redis, RocketMQ, gru servers and Node peer;
//! `connections` (capacity) starts Redis, a gru cluster or Node peers and client worker
//! processes (`connections-worker`, hidden); `ticket` starts a gru node and a minimal axum server (`minimal-http`, hidden) and
//! loads both over HTTP; `publish` drives the server API of a two-spear Redis system. Figures go to `bench/results/` (the current ones to `docs/performance.md`) with the command that produced
//! them.

#![warn(unreachable_pub, missing_docs)]

mod connections;
mod cpu;
mod gru_node;
mod histogram;
mod http_load;
mod idgen;
mod idgen_failover;
mod minimal_http;
mod publish;
mod relay;
mod ticket;

use std::num::NonZeroUsize;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// gru-bench: measurements of gru (see docs/performance.md).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Threads of the async runtime (default: one per CPU; one for `relay` and `ticket`, whose
    /// load generators share the cores with the servers they measure: one thread spends about
    /// a fifth less CPU than two). 1 runs tokio's single-threaded scheduler.
    #[arg(long, global = true, env = "GRU_WORKER_THREADS")]
    worker_threads: Option<NonZeroUsize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ids: single-id rate and latency with a coalescing client, batched rate, unique mode.
    Idgen(idgen::IdgenBench),
    /// The longest gap between strict ids while the leader is stopped (SIGTERM) and killed,
    /// on a three-core cluster it starts (see docs/performance.md).
    IdgenFailover(idgen_failover::IdgenFailoverBench),
    /// Capacity: opens many authenticated, subscribed sessions from worker processes on
    /// spears it starts (gru and the Node peer), measures memory and idle CPU per session and
    /// the connect rate, then messages across the cluster (see docs/performance.md).
    Connections(connections::ConnectionsBench),
    /// One client process of `connections`, driven over stdin/stdout.
    #[command(hide = true)]
    ConnectionsWorker,
    /// Messages between two spears, against gru (Redis or RocketMQ relay) and a Node
    /// socket.io peer (Redis adapter): starts its own Redis, RocketMQ and servers (see
    /// docs/performance.md).
    Relay(relay::RelayBench),
    /// Ticket requests per second: gru's `GET /ticket` and `GET /api/v1/ticket` against a
    /// minimal axum handler, each server started by the benchmark (see docs/performance.md).
    Ticket(ticket::TicketBench),
    /// Messages per second through the server API (`POST /api/v1/publish` and its batch
    /// form) of two gru spears relaying through Redis, with every delivery counted.
    Publish(publish::PublishBench),
    /// The minimal axum server `ticket` compares gru with (started by `ticket`).
    #[command(hide = true)]
    MinimalHttp(minimal_http::MinimalHttp),
}

impl Cli {
    /// The runtime's threads: as set, else one for `relay` and `ticket`, else `None` (one per
    /// CPU).
    fn threads(&self) -> Option<usize> {
        match (self.worker_threads, &self.command) {
            (Some(n), _) => Some(n.get()),
            (
                None,
                Command::Relay(_)
                | Command::Ticket(_)
                | Command::Publish(_)
                | Command::ConnectionsWorker,
            ) => Some(1),
            (None, _) => None,
        }
    }

    async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Idgen(args) => idgen::run(args).await,
            Command::IdgenFailover(args) => idgen_failover::run(args).await,
            Command::Connections(args) => connections::run(args).await,
            Command::ConnectionsWorker => connections::worker::run().await,
            Command::Relay(args) => relay::run(args).await,
            Command::Ticket(args) => ticket::run(args).await,
            Command::Publish(args) => publish::run(args).await,
            Command::MinimalHttp(args) => minimal_http::run(args).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let threads = cli.threads();
    // One thread is the single-threaded scheduler (as `gru --worker-threads 1` runs), not a
    // multi-threaded one with one worker.
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = threads.filter(|n| *n > 1) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
