//! `gru-bench idgen`: throughput and latency of ids against a running cluster, plus the
//! unique-mode issuer in-process. Figures go to `bench/results/idgen.md` with the command used.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use gru::config::ClusterConfig;
use gru::net::grpc::ClusterClient;
use gru::services::idgen::{IdClient, UniqueIssuer};

/// What `gru-bench idgen` measures.
#[derive(clap::Args)]
pub(crate) struct IdgenBench {
    /// The cluster config: its core nodes are the addresses tried.
    #[arg(long, default_value = "cluster.toml")]
    config: std::path::PathBuf,
    /// Concurrent callers in the closed-loop runs.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Ids per request in the batched run.
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// Requests per second in the fixed-rate latency run.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn pct(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i]
    }

    fn line(&mut self) -> String {
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
            ms(self.pct(0.5)),
            ms(self.pct(0.99)),
            ms(self.pct(0.999))
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs every idgen scenario and prints a Markdown table.
pub(crate) async fn run(args: IdgenBench) -> Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let cluster = Arc::new(ClusterClient::for_cluster(
        &config,
        Duration::from_secs(10),
    )?);
    if cluster.next_ids(1).await.is_err() {
        bail!(
            "no idgen answers through the core nodes of {}",
            args.config.display()
        );
    }
    let run = Duration::from_secs(args.seconds);
    println!("| scenario | ids/s | requests/s | latency |");
    println!("| --- | ---: | ---: | --- |");

    // 1. Single-id requests, C callers, coalesced by the client into one RPC in flight.
    let client = IdClient::spawn(cluster.clone(), config.idgen.max_batch);
    let (n, mut lat) = closed_loop(args.concurrency, run, move || {
        let client = client.clone();
        async move {
            client
                .next(1)
                .await
                .map(|_| 1u64)
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let rate = n as f64 / run.as_secs_f64();
    println!(
        "| strict, single-id, {} callers, coalescing client | {rate:.0} | {rate:.0} | {} |",
        args.concurrency,
        lat.line()
    );

    // 2. Single-id requests at a fixed rate (open loop): latency at a given load.
    let client = IdClient::spawn(cluster.clone(), config.idgen.max_batch);
    let (n, mut lat) = fixed_rate(args.rate, run, client).await;
    let rate = n as f64 / run.as_secs_f64();
    println!(
        "| strict, single-id at {} req/s (open loop) | {rate:.0} | {rate:.0} | {} |",
        args.rate,
        lat.line()
    );

    // 3. Batched requests, C callers, each RPC asking for `batch` ids.
    let batch = args.batch;
    let c = cluster.clone();
    let (n, mut lat) = closed_loop(args.concurrency.min(16), run, move || {
        let c = c.clone();
        async move {
            c.next_ids(batch)
                .await
                .map(|blocks| blocks.iter().map(|(_, n)| u64::from(*n)).sum())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let ids_rate = n as f64 / run.as_secs_f64();
    println!(
        "| strict, batches of {batch}, {} callers | {ids_rate:.0} | {:.0} | {} |",
        args.concurrency.min(16),
        ids_rate / f64::from(batch),
        lat.line()
    );

    // 4. Unique mode in-process: the issuer alone, one task (it waits for the clock on the
    //    timer once borrowing is 10 ms ahead).
    let issuer = UniqueIssuer::new(1);
    for (label, count) in [("single ids", 1u32), ("batches of 1000", 1000)] {
        let start = Instant::now();
        let mut ids = 0u64;
        while start.elapsed() < run {
            for _ in 0..1000 {
                ids += issuer
                    .issue(count)
                    .await
                    .iter()
                    .map(|b| u64::from(b.count))
                    .sum::<u64>();
            }
        }
        let rate = ids as f64 / start.elapsed().as_secs_f64();
        println!(
            "| unique, in-process, {label}, 1 thread | {rate:.0} | {:.0} | - |",
            rate / f64::from(count)
        );
    }
    println!(
        "\nSnowflake's own ceiling for comparison: 4,096 ids/ms = 4,096,000 ids/s per worker."
    );
    Ok(())
}

async fn closed_loop<F, Fut>(callers: usize, run: Duration, call: F) -> (u64, Latencies)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (call, stop) = (call.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ids, mut lat) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if let Ok(n) = call().await {
                    lat.push(t.elapsed());
                    ids += n;
                }
            }
            (ids, lat)
        }));
    }
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ids, mut lat) = (0, Vec::new());
    for task in tasks {
        if let Ok((n, l)) = task.await {
            ids += n;
            lat.extend(l);
        }
    }
    (ids, Latencies(lat))
}

async fn fixed_rate(rate: u64, run: Duration, client: IdClient) -> (u64, Latencies) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < run {
        // Send what is due by now, so a slow tick does not lower the offered rate.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let (client, tx) = (client.clone(), tx.clone());
            let t = Instant::now();
            tokio::spawn(async move {
                if client.next(1).await.is_ok() {
                    let _ = tx.send(t.elapsed());
                }
            });
            sent += 1;
        }
        tokio::time::sleep(interval.max(Duration::from_micros(500))).await;
    }
    drop(tx);
    let mut lat = Vec::new();
    while let Some(d) = rx.recv().await {
        lat.push(d);
    }
    (lat.len() as u64, Latencies(lat))
}
