//! `gru bench relay`: messages between two spears through Redis, against gru and against a
//! Node peer (socket.io 4.8 with `@socket.io/redis-adapter` 8, `bench/peer/`), in one run.
//! Each target gets a private `redis-server` and two servers; senders connect to spear A,
//! receivers to spear B. Unicast runs at rising open-loop rates, then one group with many
//! members over both spears. Reports delivered messages, send → receive latency and the
//! servers' CPU time per delivered message as Markdown (`docs/PERFORMANCE.md`).

mod client;
mod procs;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use gru::services::auth::{Claims, TokenKey, TokenKind};

use client::{Sender, To};
use procs::{Scratch, Servers};
use stats::{Counters, StepResult};

/// Which systems `gru bench relay` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// gru only.
    Gru,
    /// The Node peer only.
    Peer,
    /// gru, then the peer, in the same run.
    Both,
}

/// What `gru bench relay` measures.
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
    /// The peer's directory (server.js, package.json, package-lock.json).
    #[arg(long, default_value = "bench/peer")]
    peer_dir: PathBuf,
    /// The gru binary whose `gru run` serves the spears (default: this executable).
    #[arg(long)]
    gru_bin: Option<PathBuf>,
    /// Put receivers and every fan-out member on spear A too: no message crosses Redis
    /// (a baseline of one server alone).
    #[arg(long)]
    same_spear: bool,
}

/// The group of the fan-out runs.
const GROUP: u64 = 10;
/// User ids: senders 100,001…, receivers 200,001…, fan-out members 1,000,000…, the fan-out
/// sender 900,000.
const SENDER_BASE: u64 = 100_000;
const RECEIVER_BASE: u64 = 200_000;
const MEMBER_BASE: u64 = 1_000_000;
const FANOUT_SENDER: u64 = 900_000;
/// Connections opened at once.
const OPEN_CONCURRENCY: usize = 100;

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

async fn run_all(args: &RelayBench) -> Result<()> {
    let gru_bin = match &args.gru_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this executable")?,
    };
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
    print_report(args, &results);
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Starts one target, runs every scenario against it, stops it.
async fn bench_target(
    target: &'static str,
    args: &RelayBench,
    gru_bin: &std::path::Path,
    ticks: f64,
) -> Result<Vec<StepResult>> {
    let mut scratch = Scratch::new(target)?;
    let result = async {
        let servers = match target {
            "gru" => procs::start_gru(scratch.path(), gru_bin).await?,
            _ => procs::start_peer(scratch.path(), &args.peer_dir).await?,
        };
        eprintln!("{target}: spear A {}, spear B {}", servers.a, servers.b);
        let mut bench = Bench {
            target,
            args,
            servers,
            counters: Arc::new(Counters::new()),
            key: TokenKey::new(TokenKind::Spear, procs::SPEAR_SECRET.as_bytes()),
            ticks,
        };
        bench.scenarios().await
    }
    .await;
    if result.is_err() {
        scratch.keep();
        eprintln!("{target}: logs kept in {}", scratch.path().display());
    }
    result
}

/// One target's run.
struct Bench<'a> {
    target: &'static str,
    args: &'a RelayBench,
    servers: Servers,
    counters: Arc<Counters>,
    key: TokenKey,
    ticks: f64,
}

impl Bench<'_> {
    /// The handshake auth of user `uid`: a spear token good on both gru spears, and the uid
    /// the peer takes (gru ignores it; the peer ignores the token).
    fn auth(&self, uid: u64) -> String {
        let token = self.key.sign(Claims {
            typ: TokenKind::Spear,
            uid,
            name: format!("bench{uid}"),
            app: "bench".into(),
            exp: gru::clock::unix_ms() / 1000 + 24 * 3600,
            groups: None,
            spears: Some(vec![1, 2]),
        });
        serde_json::json!({ "token": token, "uid": uid }).to_string()
    }

    /// Where receivers and members on spear B go (spear A with `--same-spear`).
    fn b(&self) -> String {
        if self.args.same_spear {
            self.servers.a.clone()
        } else {
            self.servers.b.clone()
        }
    }

    async fn scenarios(&mut self) -> Result<Vec<StepResult>> {
        let mut results = Vec::new();
        let pairs = self.args.pairs as u64;
        eprintln!("{}: opening {pairs} sender/receiver pairs", self.target);
        let receivers = self
            .open_many((1..=pairs).map(|i| (self.b(), RECEIVER_BASE + i, None)))
            .await?;
        let receivers: Vec<_> = receivers
            .into_iter()
            .map(|ws| client::spawn_receiver(ws, self.counters.clone()))
            .collect();
        let mut senders: Vec<(Sender, To)> = self
            .open_many((1..=pairs).map(|i| (self.servers.a.clone(), SENDER_BASE + i, None)))
            .await?
            .into_iter()
            .zip(1..=pairs)
            .map(|(ws, i)| {
                let to = To::User(RECEIVER_BASE + i);
                (Sender::new(ws, self.counters.clone()), to)
            })
            .collect();
        // Warm-up (not reported): connections, Redis subscriptions and allocators settle,
        // and a relay that carries nothing is found before minutes of steps.
        let warm = self.step("warm-up", &mut senders, 200, 2, 1).await?;
        if warm.delivered == 0 {
            bail!(
                "no message crossed from spear A to spear B in the warm-up ({} sent, {} acked, \
                 {} ack errors{}): does this build relay between spears?",
                warm.sent,
                warm.acked,
                warm.ack_errors,
                self.counters
                    .first_error()
                    .map_or(String::new(), |e| format!(", first: {e}"))
            );
        }
        for &rate in &self.args.rates {
            let r = self
                .step("unicast", &mut senders, rate, self.args.seconds, 1)
                .await?;
            eprintln!("{}", r.row());
            results.push(r);
        }
        drop(senders);
        for r in receivers {
            r.abort();
        }

        if self.args.fanout_members > 0 && !self.args.fanout_rate.is_empty() {
            results.extend(self.fanout().await?);
        }
        Ok(results)
    }

    async fn fanout(&mut self) -> Result<Vec<StepResult>> {
        let n = self.args.fanout_members;
        eprintln!(
            "{}: opening {n} group members, half on each spear",
            self.target
        );
        let b = self.b();
        let members = self
            .open_many((0..n as u64).map(|i| {
                let addr = if i % 2 == 0 {
                    self.servers.a.clone()
                } else {
                    b.clone()
                };
                (addr, MEMBER_BASE + i, Some(GROUP))
            }))
            .await?;
        let members: Vec<_> = members
            .into_iter()
            .map(|ws| client::spawn_receiver(ws, self.counters.clone()))
            .collect();
        let ws = self
            .open_many([(self.servers.a.clone(), FANOUT_SENDER, None)])
            .await?;
        let mut senders: Vec<(Sender, To)> = ws
            .into_iter()
            .map(|ws| (Sender::new(ws, self.counters.clone()), To::Group(GROUP)))
            .collect();
        let mut results = Vec::new();
        for &rate in &self.args.fanout_rate {
            let r = self
                .step("fan-out", &mut senders, rate, self.args.seconds, n as u64)
                .await?;
            eprintln!("{}", r.row());
            results.push(r);
        }
        drop(senders);
        for m in members {
            m.abort();
        }
        Ok(results)
    }

    /// Opens connections `(addr, uid, group to join)`, a few at a time.
    async fn open_many(
        &self,
        conns: impl IntoIterator<Item = (String, u64, Option<u64>)>,
    ) -> Result<Vec<client::Ws>> {
        let conns: Vec<_> = conns
            .into_iter()
            .map(|(addr, uid, group)| (addr, self.auth(uid), group))
            .collect();
        let total = conns.len();
        let mut opened = Vec::with_capacity(total);
        let mut pending = stream::iter(conns)
            .map(|(addr, auth, group)| async move {
                client::open(&addr, &auth, group)
                    .await
                    .with_context(|| format!("connection to {addr}"))
            })
            .buffer_unordered(OPEN_CONCURRENCY);
        while let Some(ws) = pending.next().await {
            opened.push(ws?);
            if opened.len() % 2000 == 0 {
                eprintln!("  {} / {total} open", opened.len());
            }
        }
        Ok(opened)
    }

    /// One step: every sender together offers `rate` messages per second for `seconds`;
    /// then waits for the deliveries to drain, and reads the counters and CPU times.
    async fn step(
        &mut self,
        scenario: &'static str,
        senders: &mut Vec<(Sender, To)>,
        rate: u64,
        seconds: u64,
        per_msg: u64,
    ) -> Result<StepResult> {
        let pids = self.servers.pids();
        let counters = self.counters.clone();
        counters.begin();
        let (cpu0, self0) = (stats::cpu_ticks_of(&pids)?, stats::cpu_ticks("self")?);
        let n = senders.len();
        let per_sender = rate as f64 / n as f64;
        let total = (per_sender * seconds as f64).round() as u64;
        let begin = Instant::now() + Duration::from_millis(20);
        let mut tasks = Vec::with_capacity(n);
        for (i, (mut sender, to)) in senders.drain(..).enumerate() {
            // Spread the senders over one sending period so their writes do not coincide.
            let offset = Duration::from_secs_f64(i as f64 / n as f64 / per_sender);
            let counters = counters.clone();
            tasks.push(tokio::spawn(async move {
                let r = sender
                    .run(to, per_sender, total, begin + offset, &counters)
                    .await;
                (sender, to, r)
            }));
        }
        let progress = self.progress(scenario, rate);
        let mut error = None;
        for t in tasks {
            let (sender, to, r) = t.await.context("a sender task failed")?;
            if let Err(e) = r {
                error.get_or_insert(e);
            }
            senders.push((sender, to));
        }
        let sent_for = begin.elapsed().as_secs_f64();
        progress.abort();
        if let Some(e) = error {
            return Err(e);
        }
        self.drain(per_msg).await;
        let (cpu1, self1) = (stats::cpu_ticks_of(&pids)?, stats::cpu_ticks("self")?);
        self.servers.check_alive()?;
        let q = counters.latency.quantiles(&[0.5, 0.99, 0.999]);
        if let Some(e) = counters.first_error() {
            eprintln!("  first error acknowledgement: {e}");
        }
        Ok(StepResult {
            target: self.target,
            scenario,
            offered: rate,
            per_msg,
            seconds: sent_for.max(seconds as f64),
            sent: Counters::get(&counters.sent),
            acked: Counters::get(&counters.acked),
            ack_errors: Counters::get(&counters.ack_errors),
            delivered: Counters::get(&counters.delivered),
            lat_us: [q[0], q[1], q[2]],
            server_cpu_s: cpu1.saturating_sub(cpu0) as f64 / self.ticks,
            client_cpu_s: self1.saturating_sub(self0) as f64 / self.ticks,
        })
    }

    /// A task printing the running counts every two seconds.
    fn progress(&self, scenario: &'static str, rate: u64) -> tokio::task::JoinHandle<()> {
        let (target, c) = (self.target, self.counters.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                eprintln!(
                    "  {target} {scenario} {rate}/s, {:.0} s: sent {}, acked {}, errors {}, delivered {}",
                    start.elapsed().as_secs_f64(),
                    Counters::get(&c.sent),
                    Counters::get(&c.acked),
                    Counters::get(&c.ack_errors),
                    Counters::get(&c.delivered),
                );
            }
        })
    }

    /// Waits until every expected delivery and acknowledgement arrived, or nothing moved for
    /// two seconds, or 30 seconds passed.
    async fn drain(&self, per_msg: u64) {
        let c = &self.counters;
        let start = Instant::now();
        let (mut last, mut last_change) = (0, Instant::now());
        loop {
            let sent = Counters::get(&c.sent);
            let delivered = Counters::get(&c.delivered);
            let answered = Counters::get(&c.acked) + Counters::get(&c.ack_errors);
            if delivered >= sent * per_msg && answered >= sent {
                return;
            }
            if delivered + answered != last {
                (last, last_change) = (delivered + answered, Instant::now());
            }
            if last_change.elapsed() > Duration::from_secs(2)
                || start.elapsed() > Duration::from_secs(30)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Prints the tables and the gru/peer ratios.
fn print_report(args: &RelayBench, results: &[StepResult]) {
    println!();
    println!("{}", StepResult::header());
    for r in results {
        println!("{}", r.row());
    }
    let best = |target: &str, scenario: &str| {
        results
            .iter()
            .filter(|r| r.target == target && r.scenario == scenario && r.sustained())
            .max_by(|a, b| a.delivered_per_sec().total_cmp(&b.delivered_per_sec()))
    };
    println!();
    println!(
        "Kept up: ≥ 99.9 % of the expected deliveries arrived and p99 < 10 ms. Sending {} s per step, {} pairs, {} group members{}.",
        args.seconds,
        args.pairs,
        args.fanout_members,
        if args.same_spear { ", every connection on spear A (--same-spear)" } else { "" }
    );
    println!();
    println!("| figure | gru | peer | gru / peer |");
    println!("| --- | ---: | ---: | ---: |");
    for scenario in ["unicast", "fan-out"] {
        let (g, p) = (best("gru", scenario), best("peer", scenario));
        let rate = |r: Option<&StepResult>| r.map(StepResult::delivered_per_sec);
        let cpu = |r: Option<&StepResult>| r.map(StepResult::cpu_us_per_delivery);
        let p99 = |r: Option<&StepResult>| r.map(|r| r.lat_us[1] as f64 / 1000.0);
        row(
            &format!("{scenario}: sustained deliveries/s"),
            rate(g),
            rate(p),
            0,
        );
        row(
            &format!("{scenario}: server CPU µs per delivery at that rate"),
            cpu(g),
            cpu(p),
            2,
        );
        row(
            &format!("{scenario}: p99 ms at that rate"),
            p99(g),
            p99(p),
            2,
        );
        // The same offered rate on both sides, the highest both kept up with.
        let common = results
            .iter()
            .filter(|r| r.target == "gru" && r.scenario == scenario && r.sustained())
            .filter_map(|g| {
                results
                    .iter()
                    .find(|p| {
                        p.target == "peer"
                            && p.scenario == scenario
                            && p.offered == g.offered
                            && p.sustained()
                    })
                    .map(|p| (g, p))
            })
            .max_by_key(|(g, _)| g.offered);
        if let Some((g, p)) = common {
            let what = format!("{scenario} at {} msg/s (both kept up)", g.offered);
            row(
                &format!("{what}: CPU µs per delivery"),
                cpu(Some(g)),
                cpu(Some(p)),
                2,
            );
            row(
                &format!("{what}: p50 ms"),
                Some(g.lat_us[0] as f64 / 1000.0),
                Some(p.lat_us[0] as f64 / 1000.0),
                2,
            );
            row(&format!("{what}: p99 ms"), p99(Some(g)), p99(Some(p)), 2);
        }
    }
}

/// One row of the ratio table; `-` where a side has no figure.
fn row(what: &str, gru: Option<f64>, peer: Option<f64>, decimals: usize) {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    let ratio = match (gru, peer) {
        (Some(g), Some(p)) if p > 0.0 => format!("{:.2}×", g / p),
        _ => "-".into(),
    };
    println!("| {what} | {} | {} | {ratio} |", fmt(gru), fmt(peer));
}
