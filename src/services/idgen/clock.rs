//! Wall-clock readings for issuers, made safe against the clock stepping backwards.
//!
//! The guard only judges readings; it never waits itself, so an issuer can consult it under its
//! lock. A step back of at most [`MAX_WAIT_MS`] is answered with [`Reading::Behind`]: the issuer
//! releases its lock, sleeps on tokio's timer (never blocking a runtime thread) and reads the
//! clock again, once. A larger step, or one still there after that wait, is not waited for: the
//! issuer keeps counting from where it was (ids stay increasing, but run ahead of the clock until
//! it catches up); the step is logged and counted in [`clock_steps_back`], once per step however
//! many readings it takes the clock to catch up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Steps back up to this many milliseconds are waited out.
pub(crate) const MAX_WAIT_MS: u64 = 5;

static STEPS_BACK: AtomicU64 = AtomicU64::new(0);

/// How many times an issuer of this process saw the wall clock step back further than it waits
/// out (each step once).
pub fn clock_steps_back() -> u64 {
    STEPS_BACK.load(Ordering::Relaxed)
}

/// What a wall-clock reading allows an issuer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Use this millisecond; it is never below an earlier one of the same guard.
    At(u64),
    /// The clock is this far behind an earlier reading: release any lock, wait this long, and
    /// read again.
    Behind(Duration),
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
    /// Judges the wall-clock reading `wall_ms`. `may_wait` is false once the caller has waited
    /// for the clock, so a clock that does not catch up is never waited for twice.
    pub(crate) fn read(&mut self, wall_ms: u64, may_wait: bool) -> Reading {
        if wall_ms >= self.last_ms {
            self.last_ms = wall_ms;
            self.behind = false;
            return Reading::At(wall_ms);
        }
        let back_ms = self.last_ms - wall_ms;
        if may_wait && back_ms <= MAX_WAIT_MS {
            return Reading::Behind(Duration::from_millis(back_ms));
        }
        if !self.behind {
            self.behind = true;
            self.steps_back += 1;
            STEPS_BACK.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                back_ms,
                steps_back = self.steps_back,
                "the wall clock stepped back; ids keep counting from where they were"
            );
        }
        Reading::At(self.last_ms)
    }

    /// Steps back this guard counted.
    #[cfg(test)]
    pub(crate) fn steps_back(&self) -> u64 {
        self.steps_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard_at(ms: u64) -> ClockGuard {
        let mut guard = ClockGuard::default();
        assert_eq!(guard.read(ms, true), Reading::At(ms));
        guard
    }

    #[test]
    fn readings_never_go_below_an_earlier_one() {
        let mut guard = guard_at(1_000);
        assert_eq!(guard.read(1_000, true), Reading::At(1_000));
        assert_eq!(guard.read(1_007, true), Reading::At(1_007));
        assert_eq!(guard.read(900, false), Reading::At(1_007));
    }

    #[test]
    fn a_small_step_back_asks_for_a_wait_instead_of_reusing_the_last_reading() {
        let mut guard = guard_at(1_000);
        assert_eq!(
            guard.read(997, true),
            Reading::Behind(Duration::from_millis(3))
        );
        assert_eq!(
            guard.read(1_000 - MAX_WAIT_MS, true),
            Reading::Behind(Duration::from_millis(MAX_WAIT_MS))
        );
        // Asking for a wait is not a step back: nothing is counted, and the clock, back where
        // it was, is used as it is.
        assert_eq!(guard.steps_back(), 0);
        assert_eq!(guard.read(1_001, true), Reading::At(1_001));
    }

    #[test]
    fn a_clock_still_behind_after_the_wait_is_a_counted_step_back() {
        let mut guard = guard_at(1_000);
        assert_eq!(
            guard.read(998, true),
            Reading::Behind(Duration::from_millis(2))
        );
        assert_eq!(guard.read(999, false), Reading::At(1_000));
        assert_eq!(guard.steps_back(), 1);
    }

    #[test]
    fn a_large_step_back_keeps_the_last_reading_and_is_counted_once() {
        let mut guard = guard_at(10_000);
        let before = clock_steps_back();
        for wall in [9_000, 9_001, 9_500, 9_990] {
            assert_eq!(guard.read(wall, true), Reading::At(10_000), "at {wall}");
        }
        assert_eq!(guard.steps_back(), 1);
        assert!(clock_steps_back() > before);
        // Once the clock has caught up, a new step is a new step.
        assert_eq!(guard.read(10_005, true), Reading::At(10_005));
        assert_eq!(guard.read(8_000, true), Reading::At(10_005));
        assert_eq!(guard.steps_back(), 2);
    }
}
