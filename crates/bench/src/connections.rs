//! `gru-bench connections`: how much memory a spear spends per socket.io connection. Opens N
//! WebSocket connections to a running spear, idle or authenticated and in a group, and reads
//! the spear's resident memory from `/proc/<pid>/status` before and after.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gru::config::ClusterConfig;
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::sio::{SioConn, SioOptions};

/// What `gru-bench connections` measures.
#[derive(clap::Args)]
pub(crate) struct ConnectionsBench {
    /// The cluster config (its spear secret signs the test users' tokens).
    #[arg(long, default_value = "cluster.toml")]
    config: std::path::PathBuf,
    /// The spear's node id.
    #[arg(long)]
    spear: u64,
    /// The spear process's pid (its memory is read from /proc).
    #[arg(long)]
    pid: u32,
    /// Connections to open (one process may hold at most about 20,000 sockets here).
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Authenticate each connection and join it to a group (otherwise they stay idle).
    #[arg(long)]
    authed: bool,
}

fn rss_kib(pid: u32) -> Result<u64> {
    gru_testkit::rss_kib(pid).with_context(|| format!("no memory reading of process {pid}"))
}

/// Opens one connection; with a token, authenticates in the handshake and joins group 1
/// (unless `GRU_BENCH_NOJOIN` is set).
async fn open(addr: &str, token: Option<String>) -> Result<SioConn> {
    let authed = token.is_some();
    let options = SioOptions {
        auth: token.map(|t| serde_json::json!({ "token": t })),
        ..SioOptions::default()
    };
    let mut conn = SioConn::open(addr, &options).await?;
    if authed && std::env::var_os("GRU_BENCH_NOJOIN").is_none() {
        conn.join(1).await?;
    }
    Ok(conn)
}

/// Opens the connections, measures, closes them.
pub(crate) async fn run(args: ConnectionsBench) -> Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let addr = config
        .node(args.spear)?
        .advertised_sio()
        .context("that node has no socket.io address")?;
    let key = TokenKey::new(TokenKind::Spear, config.auth.spear_secret.as_bytes());
    let exp = gru::clock::unix_ms() / 1000 + 3600;
    let before = rss_kib(args.pid)?;
    let start = Instant::now();
    let mut held = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let token = args.authed.then(|| {
            key.sign(Claims {
                typ: TokenKind::Spear,
                uid: 1_000_000 + i as u64,
                name: format!("bench{i}"),
                app: "bench".into(),
                exp,
                groups: None,
                spears: Some(vec![args.spear]),
            })
        });
        held.push(
            open(&addr, token)
                .await
                .with_context(|| format!("connection {i}"))?,
        );
        if (i + 1) % 1000 == 0 || std::env::var_os("GRU_BENCH_TRACE").is_some() {
            eprintln!("{} connections open", i + 1);
        }
    }
    // Let the spear settle (allocator, lazily grown buffers) before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(args.pid)?;
    let per = (after.saturating_sub(before) * 1024) as f64 / args.count as f64;
    println!(
        "| {} | {} | {} KiB | {} KiB | {:.0} B | {:.1} s |",
        if args.authed {
            "authenticated, 1 group"
        } else {
            "idle (connected, no auth)"
        },
        args.count,
        before,
        after,
        per,
        start.elapsed().as_secs_f64()
    );
    for conn in held {
        let _ = conn.close().await;
    }
    Ok(())
}
