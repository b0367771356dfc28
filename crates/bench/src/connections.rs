//! `gru-bench connections`: the capacity benchmark. For each target (gru, then the Node
//! peer) it starts a private Redis and the servers (`servers.rs`), warms each spear up with a
//! few sessions, reads its resident memory, then has worker processes (`worker.rs`, the
//! hidden `connections-worker`) open the plan's sessions (`plan.rs`: connect from
//! 127.0.0.2–254, handshake token, `join` two groups) with bounded concurrency and holds
//! them. It measures each spear's memory per session (VmRSS from /proc), its CPU while the
//! sessions idle and its connect rate; then the workers send messages (unicast and group,
//! open loop) for a while and every session counts what it receives: completeness against
//! the plan's expected deliveries, send → receive latency and disconnects. Everything the
//! run starts is killed when its guard drops, also on an error or Ctrl-C.

mod plan;
mod report;
mod servers;
mod wire;
pub(crate) mod worker;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru::services::auth::{Claims, TokenKey, TokenKind};
use gru_testkit::GruBin;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::cpu::{cpu_ticks, cpu_ticks_each, machine_ticks};
use crate::histogram::Histogram;
use crate::relay::procs::SPEAR_SECRET;
use plan::Plan;
use report::{LoadResult, SpearResult, TargetResult};
use servers::Servers;
use wire::{Command, Reply, Setup, Stats};

/// Which systems a capacity run measures (`--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// gru: three core nodes and spear-only nodes, Redis relay; direct WebSocket sessions on
    /// gru's own transport (`spear.websocket = "gru"`).
    Gru,
    /// The same cluster with socketioxide's WebSocket transport (`spear.websocket =
    /// "socketioxide"`).
    GruSocketioxide,
    /// The Node peer (socket.io 4.8, Redis adapter), verifying the same tokens.
    Node,
    /// gru (its own transport), then the peer, in the same run.
    Both,
    /// gru on each WebSocket transport, then the peer, in the same run.
    All,
}

/// What `gru-bench connections` measures.
#[derive(clap::Args)]
pub(crate) struct ConnectionsBench {
    /// The system(s) under test, one after the other, each on servers of its own.
    #[arg(long, value_enum, default_value = "both")]
    target: Which,
    /// Server processes holding the sessions (gru spears or Node servers).
    #[arg(long, default_value_t = 1)]
    spears: u64,
    /// Sessions on each (one process may hold at most 20,000 open files here).
    #[arg(long, default_value_t = 15_000)]
    sessions_per_spear: u64,
    /// Client processes (default: at least 2, and enough that none holds over 15,000
    /// sessions).
    #[arg(long)]
    workers: Option<u64>,
    /// Sessions each worker opens at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Messages per second over all workers during the load (open loop); 0 skips the load.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    load_secs: u64,
    /// How long the whole load phase lasts, seconds, when longer than --load-secs (the
    /// 10-minute hold: `--hold-secs 600`); progress is printed every 10 s.
    #[arg(long)]
    hold_secs: Option<u64>,
    /// Seconds the sessions idle while the servers' CPU is read. The default covers one
    /// engine.io heartbeat of every session (gru and socket.io ping every 25 s).
    #[arg(long, default_value_t = 25)]
    idle_secs: u64,
    /// Seconds each server idles with no session open, after the warm-up, while its CPU is
    /// read: its fixed part, which the idle window's figure is split by (0 skips it).
    #[arg(long, default_value_t = 30)]
    fixed_secs: u64,
    /// Members per group (each session joins two groups).
    #[arg(long, default_value_t = 10)]
    group_size: u64,
    /// Share of messages sent to a user; the rest go to one of the sender's groups.
    #[arg(long, default_value_t = 0.5)]
    unicast_share: f64,
    /// Sessions opened and closed on each spear before its memory is first read (warm-up).
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// The peer's directory (server.js, package.json, package-lock.json); by default the one
    /// beside the benchmark's sources.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peer"))]
    peer_dir: PathBuf,
    /// The gru binary (default: `GRU_BIN`, else the `gru` next to this executable).
    #[arg(long)]
    gru_bin: Option<PathBuf>,
    /// Runtime threads of each gru process (`gru run --worker-threads`); 0 = gru's default,
    /// one per CPU. The default, 1, matches the peer's one event-loop thread per server.
    #[arg(long, default_value_t = 1)]
    gru_worker_threads: usize,
}

impl ConnectionsBench {
    /// Client processes: as given, else at least 2 and at most 15,000 sessions each.
    fn workers(&self) -> u64 {
        self.workers.unwrap_or_else(|| {
            (self.spears * self.sessions_per_spear)
                .div_ceil(15_000)
                .max(2)
        })
    }

    /// The plan every process shares.
    fn plan(&self) -> Plan {
        Plan {
            spears: self.spears,
            per_spear: self.sessions_per_spear,
            group_size: self.group_size,
            workers: self.workers().min(self.sessions_per_spear).max(1),
        }
    }

    /// Seconds the load lasts.
    fn load_secs(&self) -> u64 {
        self.hold_secs.unwrap_or(0).max(self.load_secs)
    }
}

/// Runs the benchmark; Ctrl-C or SIGTERM stops it and, through the guards, every child.
pub(crate) async fn run(args: ConnectionsBench) -> Result<()> {
    if args.spears == 0 || args.sessions_per_spear == 0 || args.group_size < 2 {
        bail!("--spears and --sessions-per-spear must be positive, --group-size at least 2");
    }
    if !(0.0..=1.0).contains(&args.unicast_share) {
        bail!("--unicast-share is a share, from 0 to 1");
    }
    let plan = args.plan();
    for w in 0..plan.workers {
        plan.sources(w)?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = run_all(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers and workers were stopped"),
        _ = term.recv() => bail!("terminated; the servers and workers were stopped"),
    }
}

/// Runs each chosen target in turn, prints the report, and fails if a target failed.
async fn run_all(args: &ConnectionsBench) -> Result<()> {
    let targets: &[&'static str] = match args.target {
        Which::Gru => &["gru"],
        Which::GruSocketioxide => &["gru-socketioxide"],
        Which::Node => &["node"],
        Which::Both => &["gru", "node"],
        Which::All => &["gru", "gru-socketioxide", "node"],
    };
    let gru_bin = match &args.gru_bin {
        Some(path) => GruBin::at(path),
        None => GruBin::locate()?,
    };
    let plan = args.plan();
    println!(
        "gru-bench connections: {} spear(s) × {} sessions, {} workers, group size {}, {} msg/s ({} % unicast) for {} s, idle {} s; gru {}; peer {}",
        plan.spears,
        plan.per_spear,
        plan.workers,
        plan.group_size,
        args.rate,
        args.unicast_share * 100.0,
        args.load_secs(),
        args.idle_secs,
        gru_bin.path().display(),
        node_version(),
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for &target in targets {
        eprintln!("== {target}");
        match bench_target(target, args, &gru_bin).await {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("{target}: {e:#}");
                failures.push(format!("{target}: {e:#}"));
            }
        }
    }
    println!("{}", report::render(&results));
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// `node --version`, or why not.
fn node_version() -> String {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| format!("Node {}", v.trim()))
        .unwrap_or_else(|| "Node (not found)".into())
}

/// One target on servers of its own; its logs are kept when it fails.
async fn bench_target(
    target: &'static str,
    args: &ConnectionsBench,
    gru_bin: &GruBin,
) -> Result<TargetResult> {
    let scratch = tempfile::Builder::new()
        .prefix(&format!("gru-bench-connections-{target}-"))
        .tempdir()
        .context("cannot create a scratch directory")?;
    let result = async {
        let mut servers = match target {
            "gru" | "gru-socketioxide" => {
                let websocket = if target == "gru" {
                    "gru"
                } else {
                    "socketioxide"
                };
                let gru = servers::GruSetup {
                    bin: gru_bin,
                    spears: args.spears,
                    worker_threads: args.gru_worker_threads,
                    websocket,
                };
                servers::start_gru(scratch.path(), gru).await?
            }
            _ => servers::start_peer(scratch.path(), &args.peer_dir, args.spears).await?,
        };
        measure(target, args, &mut servers, scratch.path()).await
    }
    .await;
    if result.is_err() {
        eprintln!("{target}: logs kept in {}", scratch.keep().display());
    }
    result
}

/// Clock ticks per second of /proc's CPU times.
fn hz() -> f64 {
    crate::cpu::clock_ticks() as f64
}

fn rss_kib(pid: u32) -> Result<u64> {
    gru_testkit::rss_kib(pid).with_context(|| format!("no memory reading of process {pid}"))
}

/// CPU seconds per process between two readings.
fn cpu_secs(before: &[u64], after: &[u64]) -> Vec<f64> {
    let hz = hz();
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64 / hz)
        .collect()
}

/// The measurement on running servers.
async fn measure(
    target: &'static str,
    args: &ConnectionsBench,
    servers: &mut Servers,
    dir: &Path,
) -> Result<TargetResult> {
    let plan = args.plan();
    let spear_pids: Vec<u32> = servers.spears.iter().map(servers::Proc::pid).collect();
    let support_pids: Vec<u32> = servers.support().iter().map(|(_, p)| *p).collect();
    let redis_pid = servers.redis.pid();

    warm_up(servers, args.warmup).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if args.fixed_secs > 0 {
        eprintln!("{target}: idle with no session for {} s", args.fixed_secs);
    }
    let fixed_before = cpu_ticks_each(&spear_pids)?;
    tokio::time::sleep(Duration::from_secs(args.fixed_secs)).await;
    let fixed_cpu = cpu_secs(&fixed_before, &cpu_ticks_each(&spear_pids)?);
    let rss_before: Vec<u64> = spear_pids
        .iter()
        .map(|p| rss_kib(*p))
        .collect::<Result<_>>()?;
    let redis_before = redis_pid.and_then(gru_testkit::rss_kib).unwrap_or(0);

    let mut workers = Workers::spawn(plan, servers, args, dir).await?;
    let mut notes = Vec::new();
    let worker_pids = workers.pids();
    let ours: Vec<u32> = [&spear_pids[..], &support_pids, &worker_pids].concat();

    // Open.
    eprintln!("{target}: opening {} sessions", plan.sessions());
    let open_start = Instant::now();
    let open_mark = CpuMark::now(&ours)?;
    let open_spears0 = cpu_ticks_each(&spear_pids)?;
    let open_support0 = cpu_ticks_each(&support_pids)?;
    let open_clients0 = cpu_ticks_each(&worker_pids)?;
    workers.broadcast(&Command::Open).await?;
    let mut last_print = (Instant::now(), 0u64);
    let opened = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        servers.check_alive()?;
        let s = workers.stats().await?;
        let elapsed = last_print.0.elapsed().as_secs_f64();
        eprintln!(
            "{target}: {} open, {} failed, {:.0}/s",
            s.opened,
            s.failed,
            s.opened.saturating_sub(last_print.1) as f64 / elapsed
        );
        last_print = (Instant::now(), s.opened);
        if s.open_done {
            break s;
        }
    };
    let open_secs = open_start.elapsed().as_secs_f64();
    let open_cpu_s = [
        cpu_secs(&open_spears0, &cpu_ticks_each(&spear_pids)?)
            .iter()
            .sum(),
        cpu_secs(&open_support0, &cpu_ticks_each(&support_pids)?)
            .iter()
            .sum(),
        cpu_secs(&open_clients0, &cpu_ticks_each(&worker_pids)?)
            .iter()
            .sum(),
    ];
    notes.extend(open_mark.disturbed("the open phase", &ours)?);
    if opened.failed > 0 {
        notes.push(format!(
            "{} sessions failed to open; the first: {}",
            opened.failed,
            opened.first_failure.clone().unwrap_or_default()
        ));
    }

    // Settle, then memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after: Vec<u64> = spear_pids
        .iter()
        .map(|p| rss_kib(*p))
        .collect::<Result<_>>()?;
    let redis_after = redis_pid.and_then(gru_testkit::rss_kib).unwrap_or(0);
    let client_rss_kib = workers
        .pids()
        .iter()
        .filter_map(|p| gru_testkit::rss_kib(*p))
        .sum();

    // Idle.
    eprintln!("{target}: idle for {} s", args.idle_secs);
    let idle_mark = CpuMark::now(&ours)?;
    let idle_before = cpu_ticks_each(&spear_pids)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_cpu = cpu_secs(&idle_before, &cpu_ticks_each(&spear_pids)?);
    notes.extend(idle_mark.disturbed("the idle window", &ours)?);
    servers.check_alive()?;
    let after_idle = workers.stats().await?;
    if after_idle.disconnects > 0 {
        notes.push(format!(
            "{} sessions closed before the load; the first: {}",
            after_idle.disconnects,
            after_idle.first_disconnect.clone().unwrap_or_default()
        ));
    }

    // Load.
    let mut load_cpu = vec![0.0; spear_pids.len()];
    let load = if args.rate > 0 && args.load_secs() > 0 {
        let load_mark = CpuMark::now(&ours)?;
        let (l, spear_cpu) = run_load(target, args, servers, &mut workers, &support_pids).await?;
        notes.extend(load_mark.disturbed("the load", &ours)?);
        load_cpu = spear_cpu;
        Some(l)
    } else {
        None
    };
    let last = workers.stats().await?;
    if let Some(e) = &last.first_ack_error {
        notes.push(format!(
            "{} error acknowledgements; the first: {e}",
            last.ack_errors
        ));
    }
    if last.send_failures > 0 {
        notes.push(format!(
            "{} messages could not be written",
            last.send_failures
        ));
    }
    if last.disconnects > after_idle.disconnects {
        notes.push(format!(
            "{} sessions closed during the load; the first close of the run: {}",
            last.disconnects - after_idle.disconnects,
            last.first_disconnect.clone().unwrap_or_default()
        ));
    }
    workers.close().await;

    let open_latency = Histogram::new();
    open_latency.add_buckets(&opened.open_latency);
    let q = open_latency.quantiles(&[0.5, 0.99]);
    let spears = servers
        .spears
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let window = opened.spears.get(k).copied().unwrap_or_default();
            SpearResult {
                id: p.id,
                opened: window.opened,
                rss_before_kib: rss_before[k],
                rss_after_kib: rss_after[k],
                fixed_cpu_s: fixed_cpu[k],
                idle_cpu_s: idle_cpu[k],
                load_cpu_s: load_cpu[k],
                connect_rate: window.rate(),
            }
        })
        .collect();
    Ok(TargetResult {
        target,
        per_spear: plan.per_spear,
        failed: opened.failed,
        open_secs,
        open_cpu_s,
        open_latency_us: [q[0], q[1]],
        idle_secs: args.idle_secs as f64,
        fixed_secs: args.fixed_secs as f64,
        spears,
        redis_rss_kib: [redis_before, redis_after],
        client_rss_kib,
        load,
        notes,
    })
}

/// The machine's CPU time and the run's own processes' at one moment. What other processes
/// (another engineer's build, say) took between two marks competed with the run on the same
/// cores, and the report says so.
struct CpuMark {
    /// All processes of the machine but niced ones (a build at nice 19 yields to the run),
    /// ticks.
    machine: u64,
    /// The run's processes and this one, ticks.
    ours: u64,
    at: Instant,
}

impl CpuMark {
    fn ours(pids: &[u32]) -> Result<u64> {
        let each: u64 = pids
            .iter()
            .filter_map(|p| cpu_ticks(&p.to_string()).ok())
            .sum();
        Ok(each + cpu_ticks("self")?)
    }

    fn now(pids: &[u32]) -> Result<Self> {
        Ok(Self {
            machine: {
                let m = machine_ticks()?;
                m.tasks - m.niced
            },
            ours: Self::ours(pids)?,
            at: Instant::now(),
        })
    }

    /// A note when other processes (not niced) used more than a tenth of a core since this
    /// mark.
    fn disturbed(&self, phase: &str, pids: &[u32]) -> Result<Option<String>> {
        let end = Self::now(pids)?;
        let foreign = end.machine.saturating_sub(self.machine) as f64 / hz()
            - end.ours.saturating_sub(self.ours) as f64 / hz();
        let secs = self.at.elapsed().as_secs_f64();
        Ok((foreign > 0.1 * secs).then(|| {
            format!(
                "other processes used {foreign:.1} CPU s during {phase} ({:.0} % of a core over {secs:.0} s): its figures are disturbed",
                foreign * 100.0 / secs
            )
        }))
    }
}

/// The load phase: `--rate` messages per second split over the workers, progress every 10 s,
/// then a drain until every expected delivery arrived or nothing moved for 3 s (60 s at
/// most). Returns the load's figures and each spear's CPU seconds.
async fn run_load(
    target: &'static str,
    args: &ConnectionsBench,
    servers: &mut Servers,
    workers: &mut Workers,
    support_pids: &[u32],
) -> Result<(LoadResult, Vec<f64>)> {
    let secs = args.load_secs();
    let spear_pids: Vec<u32> = servers.spears.iter().map(servers::Proc::pid).collect();
    let worker_pids = workers.pids();
    eprintln!("{target}: {} msg/s for {secs} s", args.rate);
    let before = workers.stats().await?;
    let spear_cpu0 = cpu_ticks_each(&spear_pids)?;
    let support_cpu0 = cpu_ticks_each(support_pids)?;
    let client_cpu0 = cpu_ticks_each(&worker_pids)?;
    let rate = args.rate as f64 / workers.len() as f64;
    workers
        .broadcast(&Command::Load {
            rate,
            secs: secs as f64,
        })
        .await?;
    let start = Instant::now();
    let mut last = (before.received, before.disconnects);
    let mut last_latency = before.latency.clone();
    let mut printed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        servers.check_alive()?;
        let s = workers.stats().await?;
        let t = start.elapsed().as_secs();
        if s.load_done || printed.elapsed() >= Duration::from_secs(10) {
            printed = Instant::now();
            let interval = Histogram::new();
            interval.add_buckets(&s.latency);
            interval.remove_buckets(&last_latency);
            let q = interval.quantiles(&[0.5, 0.99, 1.0]);
            eprintln!(
                "{target}: {t} s: sent {}, acked {}, received {} of {} (+{} since the last line, p50 / p99 / max {:.1} / {:.1} / {:.1} ms), disconnects {}",
                s.sent.saturating_sub(before.sent),
                s.acked.saturating_sub(before.acked),
                s.received.saturating_sub(before.received),
                s.expected.saturating_sub(before.expected),
                s.received.saturating_sub(last.0),
                q[0] as f64 / 1e3,
                q[1] as f64 / 1e3,
                q[2] as f64 / 1e3,
                s.disconnects.saturating_sub(last.1)
            );
            last = (s.received, s.disconnects);
            last_latency = s.latency;
        }
        if s.load_done {
            break;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Drain.
    let drain_start = Instant::now();
    let mut moved = (Instant::now(), 0u64);
    let s = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = workers.stats().await?;
        if s.received != moved.1 {
            moved = (Instant::now(), s.received);
        }
        let all_in = s.received.saturating_sub(before.received)
            >= s.expected.saturating_sub(before.expected);
        if all_in
            || moved.0.elapsed() > Duration::from_secs(3)
            || drain_start.elapsed() > Duration::from_secs(60)
        {
            break s;
        }
    };
    let spear_cpu = cpu_secs(&spear_cpu0, &cpu_ticks_each(&spear_pids)?);
    let support_cpu: f64 = cpu_secs(&support_cpu0, &cpu_ticks_each(support_pids)?)
        .iter()
        .sum();
    let client_cpu: f64 = cpu_secs(&client_cpu0, &cpu_ticks_each(&worker_pids)?)
        .iter()
        .sum();
    let latency = Histogram::new();
    latency.add_buckets(&s.latency);
    let q = latency.quantiles(&[0.5, 0.99]);
    Ok((
        LoadResult {
            rate: args.rate,
            secs: send_secs,
            sent: s.sent - before.sent,
            acked: s.acked - before.acked,
            ack_errors: s.ack_errors - before.ack_errors,
            expected: s.expected - before.expected,
            received: s.received - before.received,
            latency_us: [q[0], q[1], s.max_latency_us],
            disconnects: s.disconnects,
            support_cpu_s: support_cpu,
            client_cpu_s: client_cpu,
        },
        spear_cpu,
    ))
}

/// Opens `per_spear` sessions on each spear from this process (users and groups outside the
/// plan), holds them a second and closes them: allocator arenas, buffers and lazily built
/// state exist before the memory is first read.
async fn warm_up(servers: &Servers, per_spear: u64) -> Result<()> {
    use futures_util::StreamExt;
    if per_spear == 0 {
        return Ok(());
    }
    let key = TokenKey::new(TokenKind::Spear, SPEAR_SECRET.as_bytes());
    let exp = worker::unix_ns() / 1_000_000_000 + 3600;
    let jobs: Vec<(String, String, [u64; 2])> = servers
        .spears
        .iter()
        .flat_map(|p| {
            let key = &key;
            (0..per_spear).map(move |i| {
                let uid = 900_000_000 + p.id * 100_000 + i;
                let token = key.sign(Claims {
                    typ: TokenKind::Spear,
                    uid,
                    name: format!("warm{uid}"),
                    app: "bench".into(),
                    exp,
                    groups: None,
                    spears: Some(vec![p.id]),
                });
                (
                    p.addr.clone().unwrap_or_default(),
                    token,
                    [900_000_000 + i % 10, 900_000_100],
                )
            })
        })
        .collect();
    let held: Vec<_> = futures_util::stream::iter(jobs)
        .map(|(addr, token, groups)| async move {
            worker::open_session(&addr, token, None, groups)
                .await
                .with_context(|| format!("a warm-up session to {addr}"))
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let held: Vec<_> = held.into_iter().collect::<Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for conn in &held {
        let _ = conn.close().await;
    }
    drop(held);
    Ok(())
}

/// One worker process and its pipes.
struct WorkerProc {
    /// Killed on drop.
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// How long a worker may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl WorkerProc {
    async fn ask(&mut self, command: &Command) -> Result<Reply> {
        let mut line = serde_json::to_string(command).context("cannot encode a command")?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .context("a worker's stdin closed (did it exit? see its log)")?;
        self.stdin.flush().await.context("a worker's stdin")?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.next_line())
            .await
            .context("a worker did not answer within a minute")?
            .context("cannot read a worker's stdout")?
            .context("a worker exited (see its log)")?;
        let reply: Reply = serde_json::from_str(&answer)
            .with_context(|| format!("a malformed answer from a worker: {answer:.200}"))?;
        if let Reply::Error { message } = &reply {
            bail!("a worker refused a command: {message}");
        }
        Ok(reply)
    }
}

/// The client processes of a run.
struct Workers {
    procs: Vec<WorkerProc>,
}

impl Workers {
    /// Starts `plan.workers` copies of this executable as `connections-worker`, each with its
    /// setup, its stderr in `dir/worker<w>.log`.
    async fn spawn(
        plan: Plan,
        servers: &Servers,
        args: &ConnectionsBench,
        dir: &Path,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut procs = Vec::new();
        for w in 0..plan.workers {
            let log_path = dir.join(format!("worker{w}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let mut child = tokio::process::Command::new(&exe)
                .arg("connections-worker")
                .env_remove("GRU_WORKER_THREADS")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start worker {w} ({})", exe.display()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("worker {w} has no pipes");
            };
            let setup = Setup {
                worker: w,
                plan,
                addrs: servers.addrs(),
                spear_ids: servers.spear_ids(),
                secret: SPEAR_SECRET.into(),
                sources: plan.sources(w)?,
                concurrency: args.concurrency,
                unicast_share: args.unicast_share,
            };
            let mut proc = WorkerProc {
                child,
                stdin,
                stdout: BufReader::new(stdout).lines(),
            };
            let mut line = serde_json::to_string(&setup).context("cannot encode a setup")?;
            line.push('\n');
            proc.stdin
                .write_all(line.as_bytes())
                .await
                .with_context(|| format!("cannot send worker {w} its setup"))?;
            procs.push(proc);
        }
        Ok(Self { procs })
    }

    fn len(&self) -> usize {
        self.procs.len()
    }

    fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(|p| p.child.id()).collect()
    }

    /// Sends `command` to every worker, each answering `ok`.
    async fn broadcast(&mut self, command: &Command) -> Result<()> {
        for (w, p) in self.procs.iter_mut().enumerate() {
            p.ask(command)
                .await
                .with_context(|| format!("worker {w}"))?;
        }
        Ok(())
    }

    /// Every worker's counters, summed.
    async fn stats(&mut self) -> Result<Stats> {
        let mut all = Vec::with_capacity(self.procs.len());
        for (w, p) in self.procs.iter_mut().enumerate() {
            match p
                .ask(&Command::Stats)
                .await
                .with_context(|| format!("worker {w}"))?
            {
                Reply::Stats(s) => all.push(*s),
                other => bail!("worker {w} answered {other:?} to stats"),
            }
        }
        Ok(Stats::total(&all))
    }

    /// Tells every worker to close and waits for it to exit (10 s; killed after).
    async fn close(mut self) {
        for p in &mut self.procs {
            let _ = p.ask(&Command::Close).await;
        }
        for p in &mut self.procs {
            let _ = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_tick_deltas() {
        let hz = hz();
        let secs = cpu_secs(&[100, 200], &[100 + hz as u64, 200]);
        assert_eq!(secs, vec![1.0, 0.0]);
        assert!(cpu_ticks("self").is_ok());
    }
}
