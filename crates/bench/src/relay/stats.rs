//! What one step of `gru-bench relay` counts while it runs, and what it reports: a lock-free
//! latency histogram shared by every client task, the step's counters, CPU readings from
//! `/proc`, and the Markdown rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

use super::Target;

/// Sub-buckets per power of two: values are kept within 1/1024 (0.1 %) of what was recorded.
const SUB_BITS: u32 = 10;
/// Latencies are recorded in µs and capped below 2^30 µs (about 18 minutes), whose highest
/// set bit is bit 29.
const MAX_MSB: u32 = 29;
/// Number of buckets the cap needs: the exact range, then one set per octave above it.
const BUCKETS: usize = ((MAX_MSB - SUB_BITS) as usize + 2) << SUB_BITS;

/// A log-linear histogram of latencies in µs (the layout of HdrHistogram with three
/// significant digits), written by many tasks at once with relaxed atomic increments: one
/// shared histogram costs the client less than per-connection ones merged later (10,000
/// fan-out members).
pub(super) struct Histogram {
    /// Recordings per bucket.
    counts: Box<[AtomicU64]>,
}

impl Histogram {
    /// An empty histogram.
    pub(super) fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The bucket of `us`: exact below 2048, then 1024 buckets per power of two.
    fn index(us: u64) -> usize {
        let us = us.min((1 << 30) - 1);
        if us < (1 << (SUB_BITS + 1)) {
            return us as usize;
        }
        let msb = 63 - us.leading_zeros();
        let shift = msb - SUB_BITS;
        let sub = (us >> shift) as usize - (1 << SUB_BITS);
        ((shift as usize + 1) << SUB_BITS) + sub
    }

    /// The smallest value that falls into bucket `i`.
    fn value(i: usize) -> u64 {
        if i < (1 << (SUB_BITS + 1)) {
            return i as u64;
        }
        let shift = (i >> SUB_BITS) - 1;
        let sub = (i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS);
        (sub as u64) << shift
    }

    /// Records one latency.
    pub(super) fn record(&self, us: u64) {
        self.counts[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets everything recorded.
    pub(super) fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The latencies at each quantile of `qs` (ascending), in µs; zeros when empty.
    pub(super) fn quantiles(&self, qs: &[f64]) -> Vec<u64> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let mut out = Vec::with_capacity(qs.len());
        if total == 0 {
            out.resize(qs.len(), 0);
            return out;
        }
        let (mut seen, mut i) = (0u64, 0usize);
        for q in qs {
            // The rank of the quantile, 1-based: the value that many recordings reach.
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            while seen + counts[i] < rank {
                seen += counts[i];
                i += 1;
            }
            out.push(Self::value(i));
        }
        out
    }
}

/// Counters of the running step, shared by every client task. A step starts with
/// [`Counters::begin`]; deliveries of messages sent before that are late arrivals of an
/// earlier step and are not counted.
pub(super) struct Counters {
    /// The clock of every timestamp in message contents.
    epoch: Instant,
    /// Messages sent before this (ns since `epoch`) belong to an earlier step.
    step_start_ns: AtomicU64,
    /// `msg` events written by the senders.
    pub(super) sent: AtomicU64,
    /// Acknowledgements with `success: true`.
    pub(super) acked: AtomicU64,
    /// Acknowledgements with an error.
    pub(super) ack_errors: AtomicU64,
    /// `msg` events received for this step's messages.
    pub(super) delivered: AtomicU64,
    /// When the last of them arrived, ns since the epoch.
    last_delivery_ns: AtomicU64,
    /// Send → receive latency of each delivery.
    pub(super) latency: Histogram,
    /// The first error acknowledgement of the step, to show why.
    first_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    /// Counters with nothing counted; `epoch` starts now.
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            step_start_ns: AtomicU64::new(u64::MAX),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            ack_errors: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            latency: Histogram::new(),
            first_error: std::sync::Mutex::new(None),
        }
    }

    /// Now, in ns since the epoch (what a message's content carries).
    pub(super) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts a step: zeroes everything and counts from now on.
    pub(super) fn begin(&self) {
        // Close the window first so no late delivery lands between the reset and the start.
        self.step_start_ns.store(u64::MAX, Ordering::SeqCst);
        for c in [
            &self.sent,
            &self.acked,
            &self.ack_errors,
            &self.delivered,
            &self.last_delivery_ns,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        self.latency.reset();
        if let Ok(mut e) = self.first_error.lock() {
            *e = None;
        }
        self.step_start_ns.store(self.now_ns(), Ordering::SeqCst);
    }

    /// A `msg` event arrived whose content is `sent_ns`.
    pub(super) fn delivery(&self, sent_ns: u64) {
        if sent_ns < self.step_start_ns.load(Ordering::Relaxed) {
            return;
        }
        let now = self.now_ns();
        self.latency.record(now.saturating_sub(sent_ns) / 1000);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
    }

    /// Seconds from the start of the step to its last delivery (0 without deliveries).
    pub(super) fn delivery_span_s(&self) -> f64 {
        let start = self.step_start_ns.load(Ordering::Relaxed);
        let last = self.last_delivery_ns.load(Ordering::Relaxed);
        last.saturating_sub(start) as f64 / 1e9
    }

    /// An acknowledgement reported an error (`packet` is kept if it is the first).
    pub(super) fn ack_error(&self, packet: &str) {
        self.ack_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.first_error.lock() {
            e.get_or_insert_with(|| packet.chars().take(200).collect());
        }
    }

    /// The first error acknowledgement of the step, if any.
    pub(super) fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }

    /// Reads one counter.
    pub(super) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux when
/// that cannot be asked).
pub(super) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User + system CPU time of process `pid` so far, in clock ticks. `pid` "self" is this
/// process.
pub(super) fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("no utime in /proc stat")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("no stime in /proc stat")?;
    Ok(utime + stime)
}

/// The CPU ticks of each process of `pids`.
pub(super) fn cpu_ticks_each(pids: &[u32]) -> Result<Vec<u64>> {
    pids.iter().map(|p| cpu_ticks(&p.to_string())).collect()
}

/// What one step measured.
#[derive(Debug, Clone)]
pub(super) struct StepResult {
    /// The system under test.
    pub(super) target: Target,
    /// `unicast` or `fan-out`.
    pub(super) scenario: &'static str,
    /// Messages per second offered (open loop).
    pub(super) offered: u64,
    /// Deliveries expected per message (1 for unicast, the group size for fan-out).
    pub(super) per_msg: u64,
    /// Seconds the senders took to send everything (longer than planned when the servers
    /// push back).
    pub(super) send_s: f64,
    /// Seconds from the step's start to its last delivery.
    pub(super) span_s: f64,
    /// Messages sent.
    pub(super) sent: u64,
    /// Acknowledged with success.
    pub(super) acked: u64,
    /// Acknowledged with an error.
    pub(super) ack_errors: u64,
    /// Deliveries received (after the drain wait).
    pub(super) delivered: u64,
    /// p50, p99, p99.9 in µs.
    pub(super) lat_us: [u64; 3],
    /// CPU seconds of spear A, spear B, Redis (and, for gru's RocketMQ relay, the broker and
    /// the name server) over the step and its drain.
    pub(super) server_cpu_s: Vec<f64>,
    /// CPU seconds of this benchmark process over the same time.
    pub(super) client_cpu_s: f64,
    /// Why the step stopped early (a sender's connection was closed), if it did.
    pub(super) failure: Option<String>,
}

impl StepResult {
    /// Deliveries expected: every message sent reaches `per_msg` connections.
    pub(super) fn expected(&self) -> u64 {
        self.sent * self.per_msg
    }

    /// Share of the expected deliveries that arrived.
    pub(super) fn delivered_ratio(&self) -> f64 {
        if self.expected() == 0 {
            return 0.0;
        }
        self.delivered as f64 / self.expected() as f64
    }

    /// Messages sent per second: below the offered rate when the servers push back.
    pub(super) fn sent_per_sec(&self) -> f64 {
        if self.send_s <= 0.0 {
            return 0.0;
        }
        self.sent as f64 / self.send_s
    }

    /// Deliveries per second, from the step's start to its last delivery: a server that falls
    /// behind and delivers its backlog during the drain shows its real rate here.
    pub(super) fn delivered_per_sec(&self) -> f64 {
        if self.span_s <= 0.0 {
            return 0.0;
        }
        self.delivered as f64 / self.span_s.max(self.send_s)
    }

    /// Server CPU µs per delivered message.
    pub(super) fn cpu_us_per_delivery(&self) -> f64 {
        if self.delivered == 0 {
            return f64::NAN;
        }
        self.server_cpu() * 1e6 / self.delivered as f64
    }

    /// CPU seconds of the servers together.
    pub(super) fn server_cpu(&self) -> f64 {
        self.server_cpu_s.iter().sum()
    }

    /// The p99 a step may have and still count as kept up, µs: 10 ms for unicast (the
    /// issue's target); 1 s for fan-out, where the last of 10,000 members gets a message only
    /// after the whole group was written to (about 100 ms on 2 cores), so only a backlog that
    /// grows through the step pushes p99 past a second.
    fn p99_limit_us(&self) -> u64 {
        if self.per_msg > 1 {
            1_000_000
        } else {
            10_000
        }
    }

    /// The step kept up: ≥ 99.9 % delivered, p99 within the limit, no connection lost.
    pub(super) fn sustained(&self) -> bool {
        self.failure.is_none()
            && self.delivered_ratio() >= 0.999
            && self.lat_us[1] < self.p99_limit_us()
    }

    /// The Markdown header of [`StepResult::row`].
    pub(super) fn header() -> &'static str {
        "| target | scenario | offered msg/s | sent | sent/s | acked (errors) | delivered | delivered/s | p50 ms | p99 ms | p99.9 ms | server CPU s (A / B / Redis [/ broker / name server]) | CPU µs/delivery | client CPU s | kept up |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    }

    /// One Markdown row.
    pub(super) fn row(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "| {} | {} | {} | {} | {:.0} | {} ({}) | {} ({:.2} %) | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} ({}) | {} | {:.2} | {} |",
            self.target,
            self.scenario,
            self.offered,
            self.sent,
            self.sent_per_sec(),
            self.acked,
            self.ack_errors,
            self.delivered,
            self.delivered_ratio() * 100.0,
            self.delivered_per_sec(),
            ms(self.lat_us[0]),
            ms(self.lat_us[1]),
            ms(self.lat_us[2]),
            self.server_cpu(),
            self.server_cpu_s
                .iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
            if self.delivered == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", self.cpu_us_per_delivery())
            },
            self.client_cpu_s,
            match (&self.failure, self.sustained()) {
                _ if self.scenario == "idle" => "-".into(),
                (Some(why), _) => format!("no: {why}"),
                (None, true) => "yes".into(),
                (None, false) => "no".into(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            2047,
            2048,
            2049,
            4095,
            4096,
            1_000_000,
            (1 << 30) - 1,
        ] {
            let i = Histogram::index(v);
            assert!(i >= last && i < BUCKETS, "{v} -> {i}");
            let low = Histogram::value(i);
            assert!(low <= v && v - low <= v / 1024, "{v} -> [{low}..]");
            last = i;
        }
        for i in 0..BUCKETS {
            assert_eq!(Histogram::index(Histogram::value(i)), i);
        }
    }

    #[test]
    fn quantiles_pick_the_ranked_value() {
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(
            h.quantiles(&[0.5, 0.99, 0.999, 1.0]),
            vec![500, 990, 999, 1000]
        );
        assert_eq!(Histogram::new().quantiles(&[0.5]), vec![0]);
    }
}
