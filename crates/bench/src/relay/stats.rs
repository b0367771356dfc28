//! What one step of `gru-bench relay` counts while it runs, and what it reports: the step's
//! counters (latencies in the shared [`Histogram`]) and the Markdown rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::histogram::Histogram;

use super::Target;

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
