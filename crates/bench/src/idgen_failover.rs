//! `gru-bench idgen-failover`: the longest gap between two strict ids while the leader is
//! stopped (SIGTERM, a planned stop) and killed (SIGKILL), each so many times, on a
//! three-core cluster the benchmark starts. Callers ask every live core for one id
//! (`GET /api/v1/ids`) without pause; a gap is the time between two answered requests around
//! an event, and every id is checked strictly increasing in real time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gru_testkit::history::{check_strict, IdOp};
use gru_testkit::{GruBin, TestCluster};

/// The core nodes.
const CORES: [u64; 3] = [1, 2, 3];
/// How long a leader election may take before the run gives up.
const ELECTION_DEADLINE: Duration = Duration::from_secs(30);
/// Quiet time after a restarted node is back, before the next event.
const SETTLE: Duration = Duration::from_secs(2);

/// What `gru-bench idgen-failover` measures.
#[derive(clap::Args)]
pub(crate) struct IdgenFailoverBench {
    /// Planned stops (SIGTERM) of the leader.
    #[arg(long, default_value_t = 10)]
    stops: u32,
    /// Kills (SIGKILL) of the leader.
    #[arg(long, default_value_t = 10)]
    kills: u32,
    /// Callers per core asking for ids one after another.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// The gru binary (default: `GRU_BIN`, else the `gru` next to this executable).
    #[arg(long)]
    gru_bin: Option<std::path::PathBuf>,
}

/// One answered request.
struct Answer {
    sent: Instant,
    replied: Instant,
    id: u64,
}

/// How a leader is taken down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Stop,
    Kill,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Stop => "planned stop (SIGTERM)",
            Event::Kill => "kill (SIGKILL)",
        }
    }
}

/// Runs the events and prints each gap and a summary table.
pub(crate) async fn run(args: IdgenFailoverBench) -> Result<()> {
    if args.callers == 0 {
        bail!("--callers must be at least 1");
    }
    let gru = match &args.gru_bin {
        Some(path) => GruBin::at(path),
        None => GruBin::locate()?,
    };
    let mut cluster = TestCluster::builder()
        .gru(gru)
        .nodes(&CORES, &["core"])
        .launch()
        .await;
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = CORES
        .iter()
        .map(|id| cluster.admin_addr(*id).to_string())
        .collect();
    let mut callers = Vec::new();
    for addr in &addrs {
        for _ in 0..args.callers {
            callers.push(tokio::spawn(call(
                addr.clone(),
                answers.clone(),
                stop.clone(),
            )));
        }
    }
    tokio::time::sleep(SETTLE).await;
    let plan = std::iter::repeat_n(Event::Stop, args.stops as usize)
        .chain(std::iter::repeat_n(Event::Kill, args.kills as usize));
    let mut gaps: Vec<(Event, Duration)> = Vec::new();
    for (n, event) in plan.enumerate() {
        let (leader, term) = cluster.wait_leader(&CORES, ELECTION_DEADLINE).await;
        let at = Instant::now();
        tokio::task::block_in_place(|| match event {
            Event::Stop => {
                if !cluster.stop(leader) {
                    eprintln!("node {leader} did not exit cleanly on SIGTERM");
                }
            }
            Event::Kill => cluster.kill(leader),
        });
        let (next, next_term) = cluster
            .wait_leader(
                &CORES
                    .iter()
                    .copied()
                    .filter(|c| *c != leader)
                    .collect::<Vec<_>>(),
                ELECTION_DEADLINE,
            )
            .await;
        // Ids flow again once the new leader opened its window; wait for some.
        tokio::time::sleep(SETTLE).await;
        let gap = longest_gap(&answers.lock().expect("answers"), at)
            .context("no ids were answered around the event")?;
        eprintln!(
            "{:>2}. {}: node {leader} (term {term}) → node {next} (term {next_term}): longest gap {:.1} ms",
            n + 1,
            event.name(),
            gap.as_secs_f64() * 1e3
        );
        gaps.push((event, gap));
        cluster.restart(leader);
        cluster.wait_leader(&CORES, ELECTION_DEADLINE).await;
        tokio::time::sleep(SETTLE).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        let _ = c.await;
    }
    let answers = std::mem::take(&mut *answers.lock().expect("answers"));
    let ops: Vec<IdOp> = answers
        .iter()
        .map(|a| IdOp {
            sent: a.sent,
            replied: a.replied,
            ids: vec![a.id],
        })
        .collect();
    let checked = check_strict(&ops).map_err(|e| anyhow::anyhow!("strict order broken: {e}"))?;
    println!("{}", render(&gaps, checked));
    Ok(())
}

/// Asks `addr` for one id after another until `stop`, recording each answer.
async fn call(addr: String, answers: Arc<Mutex<Vec<Answer>>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let url = format!("http://{addr}/api/v1/ids?count=1");
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reply = http
            .get(&url)
            .bearer_auth(gru_testkit::ADMIN_KEY)
            .send()
            .await;
        let id = match reply {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["ids"][0].as_u64()),
            _ => None,
        };
        match id {
            Some(id) => answers.lock().expect("answers").push(Answer {
                sent,
                replied: Instant::now(),
                id,
            }),
            // A node that is down refuses at once: pace the retries.
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// The longest time between two consecutive answers from shortly before `at` on.
fn longest_gap(answers: &[Answer], at: Instant) -> Option<Duration> {
    let from = at.checked_sub(Duration::from_millis(100)).unwrap_or(at);
    let mut times: Vec<Instant> = answers
        .iter()
        .map(|a| a.replied)
        .filter(|t| *t >= from)
        .collect();
    times.sort_unstable();
    times.windows(2).map(|w| w[1] - w[0]).max()
}

fn render(gaps: &[(Event, Duration)], checked: usize) -> String {
    let mut out = String::from(
        "| event | runs | longest gap, median ms | longest gap, max ms |\n| --- | ---: | ---: | ---: |\n",
    );
    for event in [Event::Stop, Event::Kill] {
        let mut ms: Vec<f64> = gaps
            .iter()
            .filter(|(e, _)| *e == event)
            .map(|(_, g)| g.as_secs_f64() * 1e3)
            .collect();
        if ms.is_empty() {
            continue;
        }
        ms.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} |\n",
            event.name(),
            ms.len(),
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        ));
    }
    out.push_str(&format!(
        "\n{checked} ids checked: strictly increasing in real time, none twice."
    ));
    out
}
