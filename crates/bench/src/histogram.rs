//! A lock-free latency histogram that every client task of a benchmark records into.

use std::sync::atomic::{AtomicU64, Ordering};

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
pub(crate) struct Histogram {
    /// Recordings per bucket.
    counts: Box<[AtomicU64]>,
}

impl Histogram {
    /// An empty histogram.
    pub(crate) fn new() -> Self {
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
    pub(crate) fn record(&self, us: u64) {
        self.counts[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets everything recorded.
    pub(crate) fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The non-empty buckets as `(bucket, count)` pairs: what a worker process sends its
    /// orchestrator, which adds them into one histogram with [`Histogram::add_buckets`].
    pub(crate) fn buckets(&self) -> Vec<(u32, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u32, n))
            })
            .collect()
    }

    /// Adds buckets from [`Histogram::buckets`]; a bucket out of range (another build's
    /// layout) is ignored.
    pub(crate) fn add_buckets(&self, buckets: &[(u32, u64)]) {
        for &(i, n) in buckets {
            if let Some(c) = self.counts.get(i as usize) {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Takes out buckets added earlier (a cumulative snapshot), leaving what was recorded
    /// since: the progress line's figures for the last interval. Counts never go below zero.
    pub(crate) fn remove_buckets(&self, buckets: &[(u32, u64)]) {
        for &(i, n) in buckets {
            if let Some(c) = self.counts.get(i as usize) {
                let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(n))
                });
            }
        }
    }

    /// The latencies at each quantile of `qs` (ascending), in µs; zeros when empty.
    pub(crate) fn quantiles(&self, qs: &[f64]) -> Vec<u64> {
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

    #[test]
    fn removing_a_snapshot_leaves_what_came_after() {
        let h = Histogram::new();
        h.record(100);
        let before = h.buckets();
        h.record(5_000);
        h.record(5_000);
        let since = Histogram::new();
        since.add_buckets(&h.buckets());
        since.remove_buckets(&before);
        assert_eq!(since.quantiles(&[0.0, 1.0]), vec![5_000, 5_000]);
        since.remove_buckets(&before);
        assert_eq!(since.buckets().iter().map(|b| b.1).sum::<u64>(), 2);
    }

    #[test]
    fn buckets_add_up_across_histograms() {
        let (a, b) = (Histogram::new(), Histogram::new());
        for v in 1..=500 {
            a.record(v);
        }
        for v in 501..=1000 {
            b.record(v);
        }
        let sum = Histogram::new();
        sum.add_buckets(&a.buckets());
        sum.add_buckets(&b.buckets());
        sum.add_buckets(&[(u32::MAX, 7)]);
        assert_eq!(sum.buckets().iter().map(|(_, n)| n).sum::<u64>(), 1000);
        assert_eq!(sum.quantiles(&[0.5, 1.0]), vec![500, 1000]);
    }
}
