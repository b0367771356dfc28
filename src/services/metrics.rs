//! What a node records as it works, for its Prometheus exposition (`GET /metrics`, served by
//! `api::http::metrics`, listed in `docs/operations.md`).
//!
//! Most of what the exposition shows already exists as state — the roster's counts, the
//! relay's counters, openraft's metrics — and is read when Prometheus scrapes, so the hot path
//! pays nothing for it. What needs an event is recorded here: ticket requests by outcome, and
//! the relay's publish latency. Each costs one or two relaxed atomic adds, and nothing at all
//! with `[metrics] enabled = false` (a [`Metrics`] that is off holds nothing to add to).
//!
//! This module sits below every other service so that each may record into it; it knows none
//! of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a ticket request ended (`gru_ticket_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketOutcome {
    /// A ticket was issued.
    Issued,
    /// A required parameter was missing or empty.
    BadParam,
    /// token1 was invalid, expired or for another user.
    BadToken,
    /// No live spear could take the user.
    NoSpear,
    /// The address sent more requests than `[ticket]` allows.
    RateLimited,
}

impl TicketOutcome {
    /// Every outcome, in the order of its counter.
    pub const ALL: [TicketOutcome; 5] = [
        TicketOutcome::Issued,
        TicketOutcome::BadParam,
        TicketOutcome::BadToken,
        TicketOutcome::NoSpear,
        TicketOutcome::RateLimited,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            TicketOutcome::Issued => "issued",
            TicketOutcome::BadParam => "bad_param",
            TicketOutcome::BadToken => "bad_token",
            TicketOutcome::NoSpear => "no_spear",
            TicketOutcome::RateLimited => "rate_limited",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The upper bounds of the relay publish latency buckets, in microseconds: from a loopback
/// Redis `PUBLISH` (tens of µs) to a broker that is about to time out (seconds).
const LATENCY_BOUNDS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// A latency histogram with fixed buckets, recorded with two relaxed atomic adds and no lock
/// (prometheus-client's own `Histogram` takes a mutex per observation).
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    /// The sum of all observations, ns.
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// A histogram as Prometheus shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramReading {
    /// The sum of all observations, s.
    pub sum_seconds: f64,
    /// How many observations.
    pub count: u64,
    /// (upper bound in s, observations above the previous bound and at or below this one),
    /// without `+Inf`: not cumulative, as prometheus-client's encoder takes them.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let at = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The histogram now. The buckets are read one after the other, so under load the count
    /// and the sum may be a few observations apart; Prometheus's rates do not mind.
    pub fn read(&self) -> HistogramReading {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .map(|(bound, bucket)| (*bound as f64 / 1e6, bucket.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum::<u64>()
            + self.buckets[LATENCY_BOUNDS_US.len()].load(Ordering::Relaxed);
        HistogramReading {
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count,
            buckets,
        }
    }
}

/// What is recorded, when metrics are on.
#[derive(Debug, Default)]
pub struct Recorded {
    tickets: [AtomicU64; TicketOutcome::ALL.len()],
    relay_publish: Arc<LatencyHistogram>,
}

impl Recorded {
    /// Ticket requests that ended in `outcome`.
    pub fn tickets(&self, outcome: TicketOutcome) -> u64 {
        self.tickets[outcome.index()].load(Ordering::Relaxed)
    }

    /// How long the relay's backend took to accept each message.
    pub fn relay_publish(&self) -> &LatencyHistogram {
        &self.relay_publish
    }
}

/// Where a node records events for `/metrics`. Cheap to clone; off, it records nothing.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Option<Arc<Recorded>>);

impl Metrics {
    /// Metrics that record when `enabled` (`[metrics] enabled`).
    pub fn new(enabled: bool) -> Self {
        Self(enabled.then(Arc::default))
    }

    /// Metrics that record nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// What was recorded; `None` when metrics are off.
    pub fn recorded(&self) -> Option<&Recorded> {
        self.0.as_deref()
    }

    /// Counts a ticket request that ended in `outcome`.
    pub fn ticket(&self, outcome: TicketOutcome) {
        if let Some(recorded) = &self.0 {
            recorded.tickets[outcome.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The histogram the relay records its publish latency into; `None` when metrics are off.
    pub fn relay_publish(&self) -> Option<Arc<LatencyHistogram>> {
        self.0.as_ref().map(|r| r.relay_publish.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50)); // on the first bound: le="0.00005"
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10)); // +Inf only
        let r = h.read();
        assert_eq!(r.count, 4);
        assert_eq!(r.buckets[0], (0.00005, 1));
        assert_eq!(r.buckets[1], (0.0001, 1));
        assert_eq!(r.buckets[5], (0.0025, 0));
        assert_eq!(r.buckets[6], (0.005, 1));
        assert_eq!(r.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        let expected = 0.000_050 + 0.000_051 + 0.003 + 10.0;
        assert!((r.sum_seconds - expected).abs() < 1e-9, "{}", r.sum_seconds);
    }

    #[test]
    fn metrics_that_are_off_record_nothing() {
        let off = Metrics::off();
        off.ticket(TicketOutcome::Issued);
        assert!(off.recorded().is_none());
        assert!(off.relay_publish().is_none());
        let on = Metrics::new(true);
        on.ticket(TicketOutcome::Issued);
        on.ticket(TicketOutcome::NoSpear);
        on.ticket(TicketOutcome::NoSpear);
        let recorded = on.recorded().expect("on");
        assert_eq!(recorded.tickets(TicketOutcome::Issued), 1);
        assert_eq!(recorded.tickets(TicketOutcome::NoSpear), 2);
        assert_eq!(recorded.tickets(TicketOutcome::RateLimited), 0);
        assert!(Metrics::new(false).relay_publish().is_none());
    }

    #[test]
    fn outcome_indexes_follow_all() {
        for (i, outcome) in TicketOutcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }
}
