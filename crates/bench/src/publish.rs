//! `gru-bench publish`: messages per second a business server gets through gru's server API
//! (`POST /api/v1/publish` and `/api/v1/publish/batch`, `docs/api.md`), through the same
//! system `gru-bench relay` measures: two `gru run` spears relaying through a private Redis,
//! with history on. The load generator (`http_load`) keeps `--concurrency` keep-alive
//! connections busy publishing to spear A; `--receivers` users connected to spear B count what
//! arrives, so each figure comes with its delivery completeness: every accepted message must
//! reach its recipient.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::GruBin;
use serde_json::json;

use crate::http_load::{self, Expect, Load, LoadResult, Request};
use crate::relay::procs::{self, GruRelay, Servers};

/// What `gru-bench publish` measures.
#[derive(clap::Args)]
pub(crate) struct PublishBench {
    /// Messages per batch request; 1 measures `POST /api/v1/publish` (one message per
    /// request), more measures `POST /api/v1/publish/batch`. Several sizes measure each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    batch: Vec<usize>,
    /// Seconds measured per batch size.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before each measurement, not counted (deliveries of warm-up messages
    /// are not counted either).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Users connected to spear B who receive the messages (each message goes to one).
    #[arg(long, default_value_t = 100)]
    receivers: u64,
    /// Runtime threads of each gru process; 0 = gru's default (one per CPU).
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// The gru binary (default: `GRU_BIN`, else the `gru` next to this executable).
    #[arg(long)]
    gru_bin: Option<std::path::PathBuf>,
}

/// Users are 2,000,000 + i.
const USER_BASE: u64 = 2_000_000;
/// How long deliveries may trail the last answer before the rest count as missing.
const SETTLE: Duration = Duration::from_secs(10);

/// Runs the benchmark; Ctrl-C stops it and, through the guards, every server.
pub(crate) async fn run(args: PublishBench) -> Result<()> {
    if args.batch.is_empty()
        || args.batch.contains(&0)
        || args.seconds == 0
        || args.concurrency == 0
        || args.receivers == 0
    {
        bail!("--batch sizes, --seconds, --concurrency and --receivers must be positive");
    }
    tokio::select! {
        r = run_all(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers were stopped"),
    }
}

/// One batch size's figures.
struct Row {
    batch: usize,
    load: LoadResult,
    /// Messages accepted in the window (answers × batch).
    accepted: u64,
    /// Of them, delivered to their recipient.
    delivered: u64,
}

async fn run_all(args: &PublishBench) -> Result<()> {
    let gru_bin = match &args.gru_bin {
        Some(path) => GruBin::at(path),
        None => GruBin::locate()?,
    };
    let dir = tempfile::tempdir().context("cannot make a temp directory")?;
    eprintln!("gru server: {}", gru_bin.path().display());
    let mut servers = procs::start_gru(
        dir.path(),
        &gru_bin,
        GruRelay::Redis,
        "strict",
        args.server_threads,
        procs::Toggles {
            history: true,
            metrics: true,
            websocket: "gru",
        },
    )
    .await?;
    let api = servers
        .a_http
        .context("the gru servers have no HTTP address")?;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    for i in 0..args.receivers {
        receivers.push(receive(&servers, USER_BASE + i, delivered.clone()).await?);
    }
    eprintln!(
        "{} receivers on spear B; publishing to spear A's server API ({api}) over {} \
         connections; server_api.messages_per_sec = 0 (no limit) in the benchmark's config",
        args.receivers, args.concurrency
    );
    let mut rows = Vec::new();
    for &batch in &args.batch {
        rows.push(measure(args, &mut servers, api, batch, &delivered).await?);
    }
    for task in receivers {
        task.abort();
    }
    report(&rows);
    if rows
        .iter()
        .any(|r| r.load.errors > 0 || r.delivered < r.accepted)
    {
        bail!("some requests failed or some accepted messages were not delivered (above)");
    }
    Ok(())
}

/// Connects user `uid` to spear B and counts the `msg` events it gets.
async fn receive(
    servers: &Servers,
    uid: u64,
    delivered: Arc<AtomicU64>,
) -> Result<tokio::task::JoinHandle<()>> {
    let token = TokenKey::new(TokenKind::Spear, procs::SPEAR_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Spear,
        uid,
        name: format!("r{uid}"),
        app: "bench".into(),
        exp: gru::clock::unix_ms() / 1000 + 86_400,
        groups: None,
        // Spear B is node 1.
        spears: Some(vec![1]),
    });
    let options = gru_testkit::sio::SioOptions {
        auth: Some(json!({ "token": token })),
        ..gru_testkit::sio::SioOptions::default()
    };
    let mut conn = gru_testkit::sio::SioConn::open(&servers.b, &options)
        .await
        .with_context(|| format!("receiver {uid} could not connect to spear B"))?;
    Ok(tokio::spawn(async move {
        while let Ok(text) = conn.next_text().await {
            if text.starts_with(r#"42["msg","#) {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
}

/// The requests of one batch size: every receiver in turn, `batch` of them per request.
fn requests(args: &PublishBench, batch: usize) -> Result<Vec<Request>> {
    let users: Vec<u64> = (0..args.receivers).map(|i| USER_BASE + i).collect();
    let content = "x".repeat(64);
    let mut out = Vec::new();
    for chunk in users.chunks(batch.min(users.len())) {
        let messages: Vec<_> = (0..batch)
            .map(|i| json!({"to": {"user": chunk[i % chunk.len()]}, "content": content}))
            .collect();
        let (path, body) = if batch == 1 {
            ("/api/v1/publish", messages[0].to_string())
        } else {
            (
                "/api/v1/publish/batch",
                json!({ "messages": messages }).to_string(),
            )
        };
        out.push(
            Request::post_json(path, body)?
                .header("authorization", &format!("Bearer {}", procs::API_KEY))?,
        );
    }
    Ok(out)
}

async fn measure(
    args: &PublishBench,
    servers: &mut Servers,
    api: std::net::SocketAddr,
    batch: usize,
    delivered: &AtomicU64,
) -> Result<Row> {
    let requests = requests(args, batch)?;
    let warmup = Duration::from_secs(args.warmup_seconds);
    let load = Load {
        addr: api,
        requests: requests.into(),
        // A batch answers 200 even when a message failed: `"failed":0` says all went.
        expect: if batch == 1 {
            Expect::OK
        } else {
            Expect {
                body_contains: Some(r#""failed":0"#),
                ..Expect::OK
            }
        },
        concurrency: args.concurrency,
        warmup,
        duration: Duration::from_secs(args.seconds),
        timeout: Duration::from_secs(5),
        server_pid: servers.pids().first().copied(),
    };
    // Deliveries are counted from the start of the warm-up; so are accepted messages, from
    // the answers of the whole run (warm-up included) — read after the run settles.
    let before = delivered.load(Ordering::Relaxed);
    let result = http_load::run(&load).await?;
    servers.check_alive()?;
    let total_ok = result.ok_total;
    let accepted = total_ok * u64::try_from(batch).unwrap_or(0);
    let start = Instant::now();
    while delivered.load(Ordering::Relaxed) - before < accepted && start.elapsed() < SETTLE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = delivered.load(Ordering::Relaxed) - before;
    Ok(Row {
        batch,
        load: result,
        accepted,
        delivered: got,
    })
}

fn report(rows: &[Row]) {
    println!(
        "\n{:<28} {:>10} {:>12} {:>9} {:>9} {:>12} {:>8} {:>22}",
        "request",
        "req/s",
        "messages/s",
        "p50 ms",
        "p99 ms",
        "spear A CPU",
        "errors",
        "delivered / accepted"
    );
    for r in rows {
        let label = if r.batch == 1 {
            "POST /api/v1/publish".to_string()
        } else {
            format!("POST /publish/batch ×{}", r.batch)
        };
        let per_sec = r.load.per_sec();
        let cpu = r
            .load
            .server_cpu_s
            .map(|s| format!("{:.0} %", 100.0 * s / r.load.seconds))
            .unwrap_or_else(|| "?".into());
        println!(
            "{label:<28} {per_sec:>10.0} {:>12.0} {:>9.2} {:>9.2} {cpu:>12} {:>8} {:>22}",
            per_sec * r.batch as f64,
            r.load.latency_us[0] as f64 / 1000.0,
            r.load.latency_us[1] as f64 / 1000.0,
            r.load.errors,
            format!("{} / {}", r.delivered, r.accepted),
        );
        if let Some(e) = &r.load.first_error {
            println!("  first error: {e}");
        }
    }
}
