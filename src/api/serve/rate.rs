//! Request rates per key (GCRA, from `governor`): a sustained rate and a burst — per client
//! address on the public ports, per API key on the server API.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Keys not seen for a while are forgotten every this many checks, so the table follows the
/// keys that are active, not every key ever seen.
const SWEEP_EVERY: u64 = 4096;

/// Why a keyed rate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverRate {
    /// Over the rate: the request may be retried after this long.
    Wait(Duration),
    /// More at once than the burst: it can never pass whole.
    OverBurst(u32),
}

type Limiter<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// A limit per key; `None` inside when the limit is off.
pub struct KeyedRate<K: Hash + Eq + Clone> {
    limiter: Option<Limiter<K>>,
    burst: u32,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// The per-address limit of the public ports.
pub type PerIpRate = KeyedRate<IpAddr>;

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    /// `per_sec` per second sustained with bursts of `burst`; `per_sec = 0` turns the limit
    /// off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst).or(NonZeroU32::new(per_sec));
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst.unwrap_or(rate)))
        });
        Self {
            limiter,
            burst: burst.map_or(u32::MAX, NonZeroU32::get),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of `key`; `Err(wait)` when it is over the limit, with the time until
    /// the next request would be allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        match self.check_n(key, 1) {
            Ok(()) => Ok(()),
            Err(OverRate::Wait(wait)) => Err(wait),
            // A burst is at least one.
            Err(OverRate::OverBurst(_)) => Err(Duration::from_secs(1)),
        }
    }

    /// Counts `n` at once for `key`.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), OverRate> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(OverRate::Wait(not_until.wait_time_from(self.clock.now()))),
            Err(_) => Err(OverRate::OverBurst(self.burst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_address() {
        let rate = PerIpRate::new(1, 3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!((0..3).all(|_| rate.check(&a).is_ok()), "the burst");
        let wait = rate.check(&a).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(rate.check(&b).is_ok(), "another address has its own budget");
        let off = PerIpRate::new(0, 0);
        assert!((0..1000).all(|_| off.check(&a).is_ok()));
    }

    #[test]
    fn several_at_once_count_whole_and_more_than_a_burst_never_pass() {
        let rate = KeyedRate::<String>::new(10, 20);
        let key = "billing".to_string();
        assert_eq!(rate.check_n(&key, 15), Ok(()));
        assert!(matches!(rate.check_n(&key, 10), Err(OverRate::Wait(_))));
        assert_eq!(rate.check_n(&key, 21), Err(OverRate::OverBurst(20)));
        assert_eq!(rate.check_n(&"other".to_string(), 20), Ok(()));
    }
}
