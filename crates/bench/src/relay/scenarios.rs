//! One target's scenarios: the sender/receiver pairs and the unicast rate ladder, the idle
//! reading, then the group fan-out; each step measured through the shared counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::sio::SioConn;

use super::client::{self, Sender, To};
use super::procs::Servers;
use super::stats::{Counters, StepResult};
use super::{RelayBench, Target};
use crate::cpu;

/// The group of the fan-out runs.
const GROUP: u64 = 10;
/// Unicast sender i is user 100,000 + i.
const SENDER_BASE: u64 = 100_000;
/// Unicast receiver i (sender i's target) is user 200,000 + i.
const RECEIVER_BASE: u64 = 200_000;
/// Fan-out member i is user 1,000,000 + i.
const MEMBER_BASE: u64 = 1_000_000;
/// The fan-out sender.
const FANOUT_SENDER: u64 = 900_000;
/// Connections opened at once.
const OPEN_CONCURRENCY: usize = 100;
/// How long a step waits for late deliveries; what arrives later counts as lost.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// One target's run.
pub(super) struct Bench<'a> {
    /// The system under test.
    pub(super) target: Target,
    /// The command line.
    pub(super) args: &'a RelayBench,
    /// The system under test.
    pub(super) servers: Servers,
    /// What the client tasks count.
    pub(super) counters: Arc<Counters>,
    /// Signs the users' spear tokens.
    pub(super) key: TokenKey,
    /// Clock ticks per second of /proc CPU times.
    pub(super) ticks: f64,
}

impl Bench<'_> {
    /// The handshake auth of user `uid`: a spear token good on both gru spears, and the uid
    /// the peer takes (gru ignores it; the peer ignores the token).
    fn auth(&self, uid: u64) -> serde_json::Value {
        let token = self.key.sign(Claims {
            typ: TokenKind::Spear,
            uid,
            name: format!("bench{uid}"),
            app: "bench".into(),
            exp: gru::clock::unix_ms() / 1000 + 24 * 3600,
            groups: None,
            spears: Some(vec![1, 2]),
        });
        serde_json::json!({ "token": token, "uid": uid })
    }

    /// Where receivers and members on spear B go (spear A with `--same-spear`).
    fn b(&self) -> String {
        if self.args.same_spear {
            self.servers.a.clone()
        } else {
            self.servers.b.clone()
        }
    }

    /// The unicast scenario: opens the pairs, warms up, reads the idle cost, then climbs the
    /// rate ladder until a step loses a connection or a server.
    pub(super) async fn unicast(&mut self) -> Result<Vec<StepResult>> {
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
        // Warm-up (not reported): connections, Redis subscriptions, allocators and the peer's
        // JIT settle, and a relay that carries nothing is found before minutes of steps.
        let warm = self.step("warm-up", &mut senders, 200, 2, 1).await?;
        if let Some(why) = &warm.failure {
            bail!("the warm-up failed: {why}");
        }
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
        let idle = self.idle().await?;
        eprintln!("{}", idle.row());
        results.push(idle);
        let rates = self.args.rates.clone();
        results.extend(self.ladder("unicast", &mut senders, &rates, 1).await?);
        drop(senders);
        for r in receivers {
            r.abort();
        }
        Ok(results)
    }

    /// The group fan-out: members over both spears join one group, one sender on spear A
    /// sends to it at each `--fanout-rate`.
    pub(super) async fn fanout(&mut self) -> Result<Vec<StepResult>> {
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
        let rates = self.args.fanout_rate.clone();
        let results = self
            .ladder("fan-out", &mut senders, &rates, n as u64)
            .await?;
        drop(senders);
        for m in members {
            m.abort();
        }
        Ok(results)
    }

    /// Runs `scenario` at each of `rates` until a step fails: a closed sender or a dead
    /// server cannot take the next rates.
    async fn ladder(
        &mut self,
        scenario: &'static str,
        senders: &mut Vec<(Sender, To)>,
        rates: &[u64],
        per_msg: u64,
    ) -> Result<Vec<StepResult>> {
        let mut results = Vec::new();
        for &rate in rates {
            let r = self
                .step(scenario, senders, rate, self.args.seconds, per_msg)
                .await?;
            eprintln!("{}", r.row());
            let failure = r.failure.clone();
            results.push(r);
            if let Some(why) = failure {
                eprintln!("{}: {why}; skipping higher rates", self.target);
                break;
            }
        }
        Ok(results)
    }

    /// Opens connections `(addr, uid, group to join)`, a few at a time.
    async fn open_many(
        &self,
        conns: impl IntoIterator<Item = (String, u64, Option<u64>)>,
    ) -> Result<Vec<SioConn>> {
        let conns: Vec<_> = conns
            .into_iter()
            .map(|(addr, uid, group)| (addr, self.auth(uid), group))
            .collect();
        let total = conns.len();
        let mut opened = Vec::with_capacity(total);
        let mut pending = stream::iter(conns)
            .map(|(addr, auth, group)| async move {
                client::open(&addr, auth, group)
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
        let (cpu0, self0) = (cpu::cpu_ticks_each(&pids)?, cpu::cpu_ticks("self")?);
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
        let send_s = begin.elapsed().as_secs_f64();
        progress.abort();
        let drained = self.drain(per_msg, DRAIN_LIMIT).await;
        // Read before the liveness check, which reaps a dead server (its /proc entry goes).
        let cpu1 = cpu::cpu_ticks_each(&pids);
        let self1 = cpu::cpu_ticks("self")?;
        let mut failure = error.map(|e: anyhow::Error| format!("{e:#}"));
        if let Err(e) = self.servers.check_alive() {
            failure = Some(format!("{e:#}"));
        }
        let cpu1 = cpu1.unwrap_or_else(|_| cpu0.clone());
        let mut result = StepResult {
            target: self.target,
            scenario,
            offered: rate,
            per_msg,
            send_s,
            span_s: counters.delivery_span_s(),
            sent: Counters::get(&counters.sent),
            acked: Counters::get(&counters.acked),
            ack_errors: Counters::get(&counters.ack_errors),
            delivered: Counters::get(&counters.delivered),
            lat_us: [0; 3],
            server_cpu_s: self.cpu_seconds(&cpu0, &cpu1),
            client_cpu_s: self.cpu_seconds(&[self0], &[self1])[0],
            failure,
        };
        let q = counters.latency.quantiles(&[0.5, 0.99, 0.999]);
        result.lat_us = [q[0], q[1], q[2]];
        if !drained {
            // What is still queued would land in the next step's time and CPU: let the servers
            // finish it first (these late deliveries are not counted).
            eprintln!(
                "  {}: still delivering after {DRAIN_LIMIT:?}; waiting for it to stop",
                self.target
            );
            self.drain(u64::MAX, Duration::from_secs(300)).await;
        }
        if let Some(e) = counters.first_error() {
            eprintln!("  first error acknowledgement: {e}");
        }
        Ok(result)
    }

    /// CPU seconds per process between two readings of clock ticks.
    fn cpu_seconds(&self, before: &[u64], after: &[u64]) -> Vec<f64> {
        after
            .iter()
            .zip(before)
            .map(|(b, a)| b.saturating_sub(*a) as f64 / self.ticks)
            .collect()
    }

    /// The servers' CPU time over five seconds without traffic, every connection of the
    /// unicast runs open: what the system costs before it carries anything (gossip, leases,
    /// presence heartbeats, pings), a share of every step's CPU time.
    async fn idle(&mut self) -> Result<StepResult> {
        /// How long the idle reading lasts.
        const IDLE: Duration = Duration::from_secs(5);
        let pids = self.servers.pids();
        self.counters.begin();
        let (cpu0, self0) = (cpu::cpu_ticks_each(&pids)?, cpu::cpu_ticks("self")?);
        tokio::time::sleep(IDLE).await;
        let (cpu1, self1) = (cpu::cpu_ticks_each(&pids)?, cpu::cpu_ticks("self")?);
        self.servers.check_alive()?;
        Ok(StepResult {
            target: self.target,
            scenario: "idle",
            offered: 0,
            per_msg: 1,
            send_s: IDLE.as_secs_f64(),
            span_s: 0.0,
            sent: 0,
            acked: 0,
            ack_errors: 0,
            delivered: 0,
            lat_us: [0; 3],
            server_cpu_s: self.cpu_seconds(&cpu0, &cpu1),
            client_cpu_s: self.cpu_seconds(&[self0], &[self1])[0],
            failure: None,
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
    /// two seconds, or `limit` passed; true when everything arrived or nothing moves any more.
    async fn drain(&self, per_msg: u64, limit: Duration) -> bool {
        let c = &self.counters;
        let start = Instant::now();
        let (mut last, mut last_change) = (0, Instant::now());
        loop {
            let sent = Counters::get(&c.sent);
            let delivered = Counters::get(&c.delivered);
            let answered = Counters::get(&c.acked) + Counters::get(&c.ack_errors);
            if delivered >= sent.saturating_mul(per_msg) && answered >= sent {
                return true;
            }
            if delivered + answered != last {
                (last, last_change) = (delivered + answered, Instant::now());
            }
            if last_change.elapsed() > Duration::from_secs(2) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
