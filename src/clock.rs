//! Wall-clock readings. Only the Raft leader's readings enter the replicated state (stamped
//! into commands), so replicas never consult their own clocks when applying.

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where logic that must survive the wall clock stepping back reads it: the system clock in a
/// node, a clock the test steps back in unit tests. (Waiting is never done on this clock:
/// `tokio::time` measures waits, so paused tests control them too.)
pub(crate) trait WallClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock, [`unix_ms`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

#[cfg(test)]
pub(crate) use test_clock::{TestClock, Ticker};

#[cfg(test)]
mod test_clock {
    use std::sync::atomic::{AtomicI64, Ordering};

    use tokio::time::Instant;

    use super::WallClock;

    /// A wall clock for tests that runs with tokio's clock (so it advances with paused time)
    /// and can be stepped back or forward.
    pub(crate) struct TestClock {
        origin: Instant,
        start_ms: u64,
        offset_ms: AtomicI64,
    }

    impl TestClock {
        /// A clock reading `start_ms` now.
        pub(crate) fn starting_at(start_ms: u64) -> Self {
            Self {
                origin: Instant::now(),
                start_ms,
                offset_ms: AtomicI64::new(0),
            }
        }

        /// Steps the clock by `ms` (negative: back), as an NTP correction would.
        pub(crate) fn step(&self, ms: i64) {
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl WallClock for TestClock {
        fn now_ms(&self) -> u64 {
            let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.start_ms
                .saturating_add(elapsed)
                .saturating_add_signed(self.offset_ms.load(Ordering::SeqCst))
        }
    }

    /// A task that counts the milliseconds of tokio's clock: on a one-thread runtime it only
    /// advances while nothing blocks that thread. Stopped when dropped.
    pub(crate) struct Ticker {
        ticks: std::sync::Arc<std::sync::atomic::AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Ticker {
        /// Starts the ticker and returns once it has ticked.
        pub(crate) async fn start() -> Self {
            let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counter = ticks.clone();
            let task = tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_millis(1));
                loop {
                    every.tick().await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            while ticks.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            Self { ticks, task }
        }

        /// Ticks so far.
        pub(crate) fn count(&self) -> u64 {
            self.ticks.load(Ordering::SeqCst)
        }
    }

    impl Drop for Ticker {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}
