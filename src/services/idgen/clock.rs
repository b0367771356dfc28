//! Wall-clock readings for issuers, made safe against the clock stepping backwards.
//!
//! A step back of at most [`MAX_WAIT_MS`] is waited out (the caller sleeps until the clock is
//! back where it was). A larger step is not waited for: the issuer keeps counting from where it
//! was (ids stay increasing, but run ahead of the clock until it catches up); it is logged and
//! counted in [`clock_steps_back`], once per step however many readings it takes the clock to
//! catch up (counting every reading would count the load, and flood the log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::unix_ms;

/// Steps back up to this many milliseconds are waited out.
pub(crate) const MAX_WAIT_MS: u64 = 5;

static STEPS_BACK: AtomicU64 = AtomicU64::new(0);

/// How many times an issuer of this process saw the wall clock step back further than it waits
/// out (each step once).
pub fn clock_steps_back() -> u64 {
    STEPS_BACK.load(Ordering::Relaxed)
}

/// The last reading, to detect steps back.
#[derive(Debug, Default)]
pub(crate) struct ClockGuard {
    last_ms: u64,
    /// The clock is behind `last_ms` and that step was already counted.
    behind: bool,
    /// Steps back this guard counted.
    steps_back: u64,
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
            if !self.behind {
                self.behind = true;
                self.steps_back += 1;
                STEPS_BACK.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    back_ms = self.last_ms - now,
                    steps_back = self.steps_back,
                    "the wall clock stepped back; ids keep counting from where they were"
                );
            }
            return self.last_ms;
        }
        self.behind = false;
        self.last_ms = now;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_steps_back_are_waited_out() {
        let mut guard = ClockGuard {
            last_ms: 1_000,
            ..ClockGuard::default()
        };
        let waited = std::cell::Cell::new(0);
        let now = guard.observe(997, |ms| {
            waited.set(ms);
            1_001
        });
        assert_eq!((now, waited.get()), (1_001, 3));
    }

    #[test]
    fn large_steps_back_keep_the_last_reading_and_are_counted_once() {
        let mut guard = ClockGuard {
            last_ms: 10_000,
            ..ClockGuard::default()
        };
        let before = clock_steps_back();
        for now in [9_000, 9_001, 9_500, 9_990] {
            assert_eq!(
                guard.observe(now, |_| panic!("no wait for a large step")),
                10_000
            );
        }
        assert_eq!(guard.steps_back, 1);
        assert!(clock_steps_back() > before);
        // Once the clock has caught up, a new step is a new step.
        assert_eq!(guard.observe(10_005, |_| 0), 10_005);
        assert_eq!(guard.observe(8_000, |_| 0), 10_005);
        assert_eq!(guard.steps_back, 2);
    }
}
