//! A request rate per client address (GCRA, from `governor`): a sustained rate and a burst.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Addresses not seen for a while are forgotten every this many checks, so the table follows
/// the addresses that are active, not every address ever seen.
const SWEEP_EVERY: u64 = 4096;

/// A per-address limit; `None` inside when the limit is off.
pub struct PerIpRate {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl PerIpRate {
    /// `per_sec` requests per second sustained with bursts of `burst`; `per_sec = 0` turns the
    /// limit off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request from `ip`; `Err(wait)` when it is over the limit, with the time
    /// until the next request would be allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
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
        assert!((0..3).all(|_| rate.check(a).is_ok()), "the burst");
        let wait = rate.check(a).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(rate.check(b).is_ok(), "another address has its own budget");
        let off = PerIpRate::new(0, 0);
        assert!((0..1000).all(|_| off.check(a).is_ok()));
    }
}
