//! `gru bench connections`: how much memory a spear spends per socket.io connection. Opens N
//! WebSocket connections to a running spear, idle or authenticated and in a group, and reads
//! the spear's resident memory from `/proc/<pid>/status` before and after.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use gru::config::ClusterConfig;
use gru::services::auth::{Claims, TokenKey, TokenKind};
use tokio_tungstenite::tungstenite::Message;

/// What `gru bench connections` measures.
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text packet that is not an engine.io ping (pings are answered).
async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        let msg = ws.next().await.context("connection closed")??;
        let text = msg.to_text().unwrap_or_default().to_string();
        if text == "2" {
            ws.send(Message::text("3")).await?;
            continue;
        }
        if std::env::var_os("GRU_BENCH_TRACE").is_some() {
            eprintln!("<- {}", text.chars().take(120).collect::<String>());
        }
        return Ok(text);
    }
}

/// Opens one connection; with a token, authenticates and joins group 1.
async fn open(addr: &str, token: Option<String>) -> Result<Ws> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    // No Nagle: a join sent right after the pong to the server's first ping would otherwise
    // wait for that pong's delayed ACK (up to 40 ms), and the time to open would measure that.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    let first = next_text(&mut ws).await?;
    if !first.starts_with('0') {
        bail!("unexpected first packet {first:?}");
    }
    let connect = match &token {
        Some(t) => format!("40{}", serde_json::json!({ "token": t })),
        None => "40".into(),
    };
    ws.send(Message::text(connect)).await?;
    let reply = next_text(&mut ws).await?;
    if !reply.starts_with("40") {
        bail!("connect refused: {reply:?}");
    }
    if token.is_some() && std::env::var_os("GRU_BENCH_NOJOIN").is_none() {
        ws.send(Message::text(r#"421["join",{"groups":[1]}]"#))
            .await?;
        let ack = next_text(&mut ws).await?;
        if !ack.contains("\"success\":true") {
            bail!("join refused: {ack:?}");
        }
    }
    Ok(ws)
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
    for mut ws in held {
        let _ = ws.close(None).await;
    }
    Ok(())
}
