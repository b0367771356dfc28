//! Wall-clock readings for issuers, made safe against the clock stepping backwards.
//!
//! A step back of at most [`MAX_WAIT_MS`] is waited out (the caller sleeps until the clock is
//! back where it was). A larger step is not waited for: the issuer keeps counting from where it
//! was (ids stay increasing, but run ahead of the clock until it catches up); it is logged and
//! counted in [`clock_steps_back`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::unix_ms;

/// Steps back up to this many milliseconds are waited out.
pub(crate) const MAX_WAIT_MS: u64 = 5;

static STEPS_BACK: AtomicU64 = AtomicU64::new(0);

/// How many times the clock was seen stepping back further than `MAX_WAIT_MS`.
pub fn clock_steps_back() -> u64 {
    STEPS_BACK.load(Ordering::Relaxed)
}

/// The last reading, to detect steps back.
#[derive(Debug, Default)]
pub(crate) struct ClockGuard {
    last_ms: u64,
}

impl ClockGuard {
    /// The current Unix time in ms, never below an earlier reading of this guard.
    pub(crate) fn now_ms(&mut self) -> u64 {
        self.observe(unix_ms(), |ms| {
            std::thread::sleep(Duration::from_millis(ms));
            unix_ms()
        })
    }

    fn observe(&mut self, now: u64, wait: impl Fn(u64) -> u64) -> u64 {
        let now = if now < self.last_ms && self.last_ms - now <= MAX_WAIT_MS {
            wait(self.last_ms - now)
        } else {
            now
        };
        if now < self.last_ms {
            STEPS_BACK.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                back_ms = self.last_ms - now,
                "the wall clock stepped back; ids keep counting from where they were"
            );
            return self.last_ms;
        }
        self.last_ms = now;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_steps_back_are_waited_out() {
        let mut guard = ClockGuard { last_ms: 1_000 };
        let waited = std::cell::Cell::new(0);
        let now = guard.observe(997, |ms| {
            waited.set(ms);
            1_001
        });
        assert_eq!((now, waited.get()), (1_001, 3));
    }

    #[test]
    fn large_steps_back_keep_the_last_reading_and_are_counted() {
        let mut guard = ClockGuard { last_ms: 10_000 };
        let before = clock_steps_back();
        assert_eq!(
            guard.observe(9_000, |_| panic!("no wait for a large step")),
            10_000
        );
        assert!(clock_steps_back() > before);
        assert_eq!(guard.observe(10_005, |_| 0), 10_005);
    }
}
