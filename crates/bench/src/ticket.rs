//! `gru-bench ticket`: requests per second of gru's ticket — Gru's `GET /ticket` and the modern
//! `GET /api/v1/ticket` — against a minimal axum handler on the same machine, in one run.
//!
//! gru runs as one `gru run` node (core, spear and ticket; the local relay, no Redis) from a
//! generated config whose per-address ticket limit is off (`ticket.requests_per_ip_per_sec =
//! 0`: every request comes from 127.0.0.1); the minimal handler is `gru-bench minimal-http`
//! in a process of its own. Both get `--server-threads` runtime threads. The load generator
//! (`http_load`) keeps `--concurrency` keep-alive connections busy, each asking a ticket for
//! one of `--users` users with a valid token1, and reads the server's CPU time from `/proc`.
//! Each server is started for its targets and stopped after them, so it runs alone beside the
//! load generator.

mod procs;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::GruBin;

use crate::http_load::{self, Expect, Load, LoadResult, Request};
use procs::Server;

/// Users are 1,000,000 + i.
const USER_BASE: u64 = 1_000_000;

/// One endpoint under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    /// gru's `GET /ticket` (Gru's API: always 200, `"success":true` in the body).
    GruLegacy,
    /// gru's `GET /api/v1/ticket`.
    GruModern,
    /// The minimal axum handler's `GET /ticket`.
    Minimal,
}

impl Target {
    /// Whether the target is served by gru (otherwise by the minimal handler).
    fn is_gru(self) -> bool {
        self != Target::Minimal
    }

    /// The request for user `uid` with token1 `token`.
    fn request(self, uid: u64, token: &str) -> Result<Request> {
        let path = match self {
            Target::GruLegacy | Target::Minimal => {
                format!("/ticket?userId={uid}&userName=bench{uid}&appType=web&token1={token}")
            }
            Target::GruModern => format!(
                "/api/v1/ticket?user_id={uid}&user_name=bench{uid}&app_type=web&token={token}"
            ),
        };
        Request::get(&path)
    }

    /// What a ticket looks like: Gru's envelope says `"success":true` (its refusals are 200s
    /// too); the modern API and the minimal handler answer 200 only to success.
    fn expect(self) -> Expect {
        match self {
            Target::GruLegacy => Expect {
                body_contains: Some(r#""success":true"#),
                ..Expect::OK
            },
            Target::GruModern | Target::Minimal => Expect::OK,
        }
    }
}

impl std::fmt::Display for Target {
    /// The label of the report's rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::GruLegacy => "gru /ticket",
            Target::GruModern => "gru /api/v1/ticket",
            Target::Minimal => "minimal axum /ticket",
        })
    }
}

/// What `gru-bench ticket` measures.
#[derive(clap::Args)]
pub(crate) struct TicketBench {
    /// The endpoints to load, in this order in each round.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "minimal,gru-legacy,gru-modern"
    )]
    targets: Vec<Target>,
    /// Seconds measured per target.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before each measurement, not counted.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Keep-alive connections, each with one request in flight (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Distinct users whose tickets are asked for, in turn (each with its own token1).
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Times every target is measured, on freshly started servers each round; the summary
    /// takes each target's median.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Runtime threads of gru (`gru run --worker-threads`) and of the minimal server alike;
    /// 0 = each one's default, one per CPU. 1 runs tokio's single-threaded scheduler.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Longest a request may take before it counts as an error, ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// The gru binary (default: `GRU_BIN`, else the `gru` next to this executable).
    #[arg(long)]
    gru_bin: Option<PathBuf>,
}

/// One target measured in one round.
pub(super) struct Measured {
    /// The endpoint.
    target: Target,
    /// The round, from 1.
    round: usize,
    /// What the load measured, or why it could not.
    result: Result<LoadResult, String>,
}

/// Runs the benchmark; Ctrl-C or SIGTERM stops it and, through the guards, every server.
pub(crate) async fn run(args: TicketBench) -> Result<()> {
    if args.targets.is_empty()
        || args.seconds == 0
        || args.concurrency == 0
        || args.users == 0
        || args.rounds == 0
        || args.timeout_ms == 0
    {
        bail!(
            "--targets, --seconds, --concurrency, --users, --rounds and --timeout-ms must be \
             given and positive"
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = run_all(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers were stopped"),
        _ = term.recv() => bail!("terminated; the servers were stopped"),
    }
}

/// Runs every round, prints the report, and fails if a target could not be measured.
async fn run_all(args: &TicketBench) -> Result<()> {
    let gru_bin = match &args.gru_bin {
        Some(path) => GruBin::at(path),
        None => GruBin::locate()?,
    };
    if args.targets.iter().any(|t| t.is_gru()) {
        eprintln!("gru server: {}", gru_bin.path().display());
    }
    eprintln!(
        "ticket rate limit off in the benchmark's gru config \
         (ticket.requests_per_ip_per_sec = 0); {} keep-alive connections, {} users",
        args.concurrency, args.users
    );
    let key = TokenKey::new(TokenKind::Business, procs::BUSINESS_SECRET.as_bytes());
    let exp = gru::clock::unix_ms() / 1000 + 24 * 3600;
    let tokens: Vec<(u64, String)> = (0..args.users)
        .map(|i| {
            let uid = USER_BASE + i;
            (uid, token1(&key, uid, exp))
        })
        .collect();
    // Removed on success; a failed run keeps it, since the servers' logs explain the failure.
    let scratch = tempfile::Builder::new()
        .prefix("gru-bench-ticket-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let mut measured = Vec::new();
    for round in 1..=args.rounds {
        let mut server: Option<Server> = None;
        for &target in &args.targets {
            let result = measure(
                args,
                &gru_bin,
                &tokens,
                scratch.path(),
                round,
                target,
                &mut server,
            )
            .await
            .map_err(|e| format!("{e:#}"));
            match &result {
                Ok(r) => eprintln!("{}", report::row(target, round, r)),
                Err(e) => eprintln!("{target} (round {round}): {e}"),
            }
            measured.push(Measured {
                target,
                round,
                result,
            });
        }
    }
    report::print(args, &measured);
    let failed: Vec<String> = measured
        .iter()
        .filter_map(|m| {
            m.result
                .as_ref()
                .err()
                .map(|e| format!("{} (round {}): {e}", m.target, m.round))
        })
        .collect();
    if !failed.is_empty() {
        eprintln!("logs kept in {}", scratch.keep().display());
        bail!("not measured: {}", failed.join("; "));
    }
    Ok(())
}

/// Measures `target`, starting its server first unless `server` already is it (stopping the
/// other one).
async fn measure(
    args: &TicketBench,
    gru_bin: &GruBin,
    tokens: &[(u64, String)],
    scratch: &std::path::Path,
    round: usize,
    target: Target,
    server: &mut Option<Server>,
) -> Result<LoadResult> {
    let requests: Arc<[Request]> = tokens
        .iter()
        .map(|(uid, token)| target.request(*uid, token))
        .collect::<Result<Vec<_>>>()?
        .into();
    if server
        .as_ref()
        .is_none_or(|s| s.is_gru() != target.is_gru())
    {
        // The other server goes first: each runs alone beside the load generator.
        *server = None;
        let dir = scratch.join(format!(
            "round{round}-{}",
            if target.is_gru() { "gru" } else { "minimal" }
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let started = if target.is_gru() {
            // Ready when a ticket can be had: the spear is registered and ticket sees it.
            let probe = Target::GruModern.request(tokens[0].0, &tokens[0].1)?;
            procs::start_gru(&dir, gru_bin, args.server_threads, &probe).await?
        } else {
            procs::start_minimal(&dir, args.server_threads).await?
        };
        eprintln!("{started}");
        *server = Some(started);
    }
    let Some(running) = server.as_mut() else {
        bail!("no server for {target}");
    };
    let load = Load {
        addr: running.addr(),
        requests,
        expect: target.expect(),
        concurrency: args.concurrency,
        warmup: Duration::from_secs(args.warmup_seconds),
        duration: Duration::from_secs(args.seconds),
        timeout: Duration::from_millis(args.timeout_ms),
        server_pid: Some(running.pid()),
    };
    eprintln!("== {target} (round {round})");
    let result = http_load::run(&load).await;
    // A server that died under load makes the figures meaningless, whatever they are.
    running.check_alive()?;
    let result = result?;
    if result.ok == 0 {
        bail!(
            "no good answer in {} s ({} errors{})",
            args.seconds,
            result.errors,
            result
                .first_error
                .as_deref()
                .map_or(String::new(), |e| format!(", first: {e}"))
        );
    }
    Ok(result)
}

/// token1 of user `uid` (name `bench<uid>`, app `web`), as the business system would sign it.
fn token1(key: &TokenKey, uid: u64, exp: u64) -> String {
    key.sign(Claims {
        typ: TokenKind::Business,
        uid,
        name: format!("bench{uid}"),
        app: "web".into(),
        exp,
        groups: None,
        spears: None,
    })
}
