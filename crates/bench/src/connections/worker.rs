//! `gru-bench connections-worker` (hidden): one client process of the capacity benchmark. It
//! reads its [`Setup`] and then [`Command`]s on stdin and answers each on stdout
//! (`wire.rs`). It opens its share of the plan's sessions — connect from one of its source
//! addresses, handshake token, `join` two groups, acknowledged — with bounded concurrency,
//! holds them with one reading task each (which answers pings and counts what arrives), and
//! sends its share of the load from random sessions. It exits when told to or when its stdin
//! closes (the orchestrator is gone).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::sio::{SioConn, SioOptions, SioReader, SioWriter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::wire::{Command, Reply, Setup, SpearOpen, Stats};
use crate::histogram::Histogram;
use crate::relay::client::sent_ns;

/// How long one session may take to connect, authenticate and join.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The ack id of every session's `join` (the first packet that asks for one).
const JOIN_ACK: u64 = 1;
/// How long the tokens live: longer than any run.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Now as Unix ns: the clock every process of the run shares, so that a message's send
/// time, written by one worker, is read by another.
pub(crate) fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Keeps the first of several reasons.
fn keep_first(slot: &Mutex<Option<String>>, why: impl FnOnce() -> String) {
    if let Ok(mut slot) = slot.lock() {
        if slot.is_none() {
            *slot = Some(why().chars().take(300).collect());
        }
    }
}

fn read_first(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

/// One spear's opening window as it happens.
struct SpearWindow {
    opened: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

/// An open session: its plan index and its writing half.
struct Held {
    session: u64,
    writer: Arc<SioWriter>,
}

/// A small, fast generator (SplitMix64): which session sends, to whom.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (> 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The worker's state, shared by its tasks.
struct Worker {
    setup: Setup,
    key: TokenKey,
    opened: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    open_done: AtomicBool,
    spears: Vec<SpearWindow>,
    open_latency: Histogram,
    sessions: Mutex<Vec<Held>>,
    next_ack: AtomicU64,
    sent: AtomicU64,
    send_failures: AtomicU64,
    acked: AtomicU64,
    ack_errors: AtomicU64,
    first_ack_error: Mutex<Option<String>>,
    expected: AtomicU64,
    received: AtomicU64,
    latency: Histogram,
    max_latency_us: AtomicU64,
    disconnects: AtomicU64,
    first_disconnect: Mutex<Option<String>>,
    load_done: AtomicBool,
    /// Set before the worker closes its sessions: what closes then is no disconnect.
    closing: AtomicBool,
}

impl Worker {
    fn new(setup: Setup) -> Self {
        let spears = (0..setup.addrs.len())
            .map(|_| SpearWindow {
                opened: AtomicU64::new(0),
                first_ns: AtomicU64::new(u64::MAX),
                last_ns: AtomicU64::new(0),
            })
            .collect();
        Self {
            key: TokenKey::new(TokenKind::Spear, setup.secret.as_bytes()),
            setup,
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
            open_done: AtomicBool::new(false),
            spears,
            open_latency: Histogram::new(),
            sessions: Mutex::new(Vec::new()),
            next_ack: AtomicU64::new(JOIN_ACK + 1),
            sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            ack_errors: AtomicU64::new(0),
            first_ack_error: Mutex::new(None),
            expected: AtomicU64::new(0),
            received: AtomicU64::new(0),
            latency: Histogram::new(),
            max_latency_us: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            first_disconnect: Mutex::new(None),
            load_done: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    /// Opens every session of this worker, `concurrency` at a time.
    async fn open_all(self: Arc<Self>) {
        let plan = self.setup.plan;
        let mine: Vec<u64> = plan.sessions_of(self.setup.worker).collect();
        futures_util::stream::iter(mine.into_iter().enumerate())
            .for_each_concurrent(self.setup.concurrency.max(1), |(i, s)| {
                let me = self.clone();
                async move { me.open_one(i, s).await }
            })
            .await;
        self.open_done.store(true, Ordering::SeqCst);
    }

    /// Opens session `s`, the `i`-th of this worker, and starts its reader.
    async fn open_one(self: &Arc<Self>, i: usize, s: u64) {
        let plan = self.setup.plan;
        let spear = plan.spear_of(s) as usize;
        let (Some(addr), Some(&spear_id)) =
            (self.setup.addrs.get(spear), self.setup.spear_ids.get(spear))
        else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            keep_first(&self.first_failure, || format!("no spear {spear}"));
            return;
        };
        let source = self
            .setup
            .sources
            .get(i % self.setup.sources.len().max(1))
            .copied()
            .map(IpAddr::V4);
        let uid = plan.uid(s);
        let token = self.key.sign(Claims {
            typ: TokenKind::Spear,
            uid,
            name: format!("u{uid}"),
            app: "bench".into(),
            exp: unix_ns() / 1_000_000_000 + TOKEN_TTL_SECS,
            groups: None,
            spears: Some(vec![spear_id]),
        });
        let window = &self.spears[spear];
        window.first_ns.fetch_min(unix_ns(), Ordering::Relaxed);
        let start = Instant::now();
        let opened = tokio::time::timeout(
            OPEN_TIMEOUT,
            open_session(addr, token, source, plan.groups(s)),
        )
        .await;
        match opened {
            Ok(Ok(conn)) => {
                self.open_latency
                    .record(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
                window.opened.fetch_add(1, Ordering::Relaxed);
                window.last_ns.fetch_max(unix_ns(), Ordering::Relaxed);
                self.opened.fetch_add(1, Ordering::Relaxed);
                let (writer, reader) = conn.split();
                if let Ok(mut held) = self.sessions.lock() {
                    held.push(Held {
                        session: s,
                        writer: Arc::new(writer),
                    });
                }
                self.spawn_reader(reader);
            }
            Ok(Err(e)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                keep_first(&self.first_failure, || {
                    format!("session {s} (user {uid}) to {addr}: {e:#}")
                });
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                keep_first(&self.first_failure, || {
                    format!("session {s} to {addr}: not open within {OPEN_TIMEOUT:?}")
                });
            }
        }
    }

    /// Reads one session until it closes: answers pings, counts deliveries and
    /// acknowledgements, and counts a close it did not ask for as a disconnect.
    fn spawn_reader(self: &Arc<Self>, mut reader: SioReader) {
        let me = self.clone();
        tokio::spawn(async move {
            let why = loop {
                match reader.next_text().await {
                    Ok(text) => me.on_packet(&text),
                    Err(e) => break e.to_string(),
                }
            };
            if !me.closing.load(Ordering::SeqCst) {
                me.disconnects.fetch_add(1, Ordering::Relaxed);
                keep_first(&me.first_disconnect, || why);
            }
        });
    }

    fn on_packet(&self, text: &str) {
        if let Some(ns) = sent_ns(text) {
            let us = unix_ns().saturating_sub(ns) / 1000;
            self.latency.record(us);
            self.max_latency_us.fetch_max(us, Ordering::Relaxed);
            self.received.fetch_add(1, Ordering::Relaxed);
        } else if text.starts_with("43") {
            if text.contains(r#""success":true"#) {
                self.acked.fetch_add(1, Ordering::Relaxed);
            } else {
                self.ack_errors.fetch_add(1, Ordering::Relaxed);
                keep_first(&self.first_ack_error, || text.to_string());
            }
        } else if text.starts_with(r#"42["server_disconnect""#)
            || text.starts_with(r#"42["server_shutdown""#)
        {
            // The close follows; this says why.
            keep_first(&self.first_disconnect, || text.to_string());
        }
    }

    /// Sends `rate` messages per second for `secs` seconds (open loop), each from a random
    /// open session, to a random user or to one of the sender's groups.
    async fn load(self: Arc<Self>, rate: f64, secs: f64) {
        let held: Vec<(u64, Arc<SioWriter>)> = match self.sessions.lock() {
            Ok(held) => held.iter().map(|h| (h.session, h.writer.clone())).collect(),
            Err(_) => Vec::new(),
        };
        let total = (rate * secs).round() as u64;
        if held.is_empty() || rate <= 0.0 {
            self.load_done.store(true, Ordering::SeqCst);
            return;
        }
        let plan = self.setup.plan;
        let mut rng = Rng(unix_ns() ^ (self.setup.worker << 48));
        let start = Instant::now();
        let mut n = 0u64;
        while n < total {
            // Everything due by now goes out, so a late wake-up does not lower the rate.
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
            while n < due {
                let (sender, writer) = &held[rng.below(held.len() as u64) as usize];
                let (kind, target, deliveries) = if rng.unit() < self.setup.unicast_share {
                    (0, plan.uid(rng.below(plan.sessions())), 1)
                } else {
                    let gid = plan.groups(*sender)[rng.below(2) as usize];
                    (1, gid, plan.members(gid))
                };
                let ack = self.next_ack.fetch_add(1, Ordering::Relaxed);
                let packet = format!(
                    r#"42{ack}["msg",{{"type":{kind},"target":{{"id":{target}}},"content":"{}"}}]"#,
                    unix_ns()
                );
                let (me, writer) = (self.clone(), writer.clone());
                // A connection whose socket is full must not hold the others' messages up.
                tokio::spawn(async move {
                    if writer.send(packet).await.is_ok() {
                        me.sent.fetch_add(1, Ordering::Relaxed);
                        me.expected.fetch_add(deliveries, Ordering::Relaxed);
                    } else {
                        me.send_failures.fetch_add(1, Ordering::Relaxed);
                    }
                });
                n += 1;
            }
            if n < total {
                let next = start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(next.into()).await;
            }
        }
        self.load_done.store(true, Ordering::SeqCst);
    }

    fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            opened: get(&self.opened),
            failed: get(&self.failed),
            first_failure: read_first(&self.first_failure),
            open_done: self.open_done.load(Ordering::SeqCst),
            spears: self
                .spears
                .iter()
                .map(|w| {
                    let opened = get(&w.opened);
                    SpearOpen {
                        opened,
                        first_ns: if opened == 0 { 0 } else { get(&w.first_ns) },
                        last_ns: get(&w.last_ns),
                    }
                })
                .collect(),
            open_latency: self.open_latency.buckets(),
            sent: get(&self.sent),
            send_failures: get(&self.send_failures),
            acked: get(&self.acked),
            ack_errors: get(&self.ack_errors),
            first_ack_error: read_first(&self.first_ack_error),
            expected: get(&self.expected),
            received: get(&self.received),
            latency: self.latency.buckets(),
            max_latency_us: get(&self.max_latency_us),
            disconnects: get(&self.disconnects),
            first_disconnect: read_first(&self.first_disconnect),
            load_done: self.load_done.load(Ordering::SeqCst),
        }
    }
}

/// Connects from `source`, authenticates with `token` in the handshake and joins `groups`;
/// returns once the join is acknowledged with success.
pub(super) async fn open_session(
    addr: &str,
    token: String,
    source: Option<IpAddr>,
    groups: [u64; 2],
) -> Result<SioConn> {
    let options = SioOptions {
        auth: Some(serde_json::json!({ "token": token })),
        local_ip: source,
        ..SioOptions::default()
    };
    let mut conn = SioConn::open(addr, &options).await?;
    conn.send(format!(
        r#"42{JOIN_ACK}["join",{{"groups":[{},{}]}}]"#,
        groups[0], groups[1]
    ))
    .await?;
    let expected = format!("43{JOIN_ACK}[");
    loop {
        let reply = conn.next_text().await.context("waiting for the join ack")?;
        if reply.starts_with(&expected) {
            if reply.contains(r#""success":true"#) {
                return Ok(conn);
            }
            anyhow::bail!("join refused: {}", &*reply);
        }
    }
}

/// Runs the worker: reads the setup and then commands on stdin, answers on stdout.
pub(crate) async fn run() -> Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await
        .context("cannot read the setup")?
        .context("stdin closed before the setup")?;
    let setup: Setup = serde_json::from_str(&first).context("a malformed setup line")?;
    if setup.sources.is_empty() {
        anyhow::bail!("the setup gives no source address");
    }
    let worker = Arc::new(Worker::new(setup));
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await.context("cannot read stdin")? {
        let command = serde_json::from_str::<Command>(&line);
        let close = matches!(command, Ok(Command::Close));
        let reply = match command {
            Ok(Command::Open) => {
                tokio::spawn(worker.clone().open_all());
                Reply::Ok
            }
            Ok(Command::Load { rate, secs }) => {
                tokio::spawn(worker.clone().load(rate, secs));
                Reply::Ok
            }
            Ok(Command::Stats) => Reply::Stats(Box::new(worker.stats())),
            Ok(Command::Close) => {
                worker.closing.store(true, Ordering::SeqCst);
                Reply::Ok
            }
            Err(e) => Reply::Error {
                message: format!("a malformed command: {e}"),
            },
        };
        let mut text = serde_json::to_string(&reply).context("cannot encode a reply")?;
        text.push('\n');
        out.write_all(text.as_bytes())
            .await
            .context("cannot write stdout")?;
        out.flush().await.context("cannot write stdout")?;
        if close {
            break;
        }
    }
    // Told to close, or the orchestrator is gone: the sessions close as the process exits.
    worker.closing.store(true, Ordering::SeqCst);
    Ok(())
}
