//! Unique mode: snowflake ids from this node's own worker id, no coordination per id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock::{ClockGuard, Reading};
use super::layout::{unique_id, PER_MS};
use super::IdBlock;
use crate::clock::{SystemClock, WallClock};

/// How far ahead of the clock borrowing may run. A restarted node must not reuse a borrowed
/// millisecond, and it takes far longer than this to restart and get its worker id back.
pub(crate) const MAX_AHEAD_MS: u64 = 10;

/// How long a request waits for the clock when borrowing has run `MAX_AHEAD_MS` ahead.
const BORROW_WAIT: Duration = Duration::from_millis(1);

/// Issues snowflake ids for one worker.
pub struct UniqueIssuer {
    worker: u16,
    wall: Arc<dyn WallClock>,
    state: Mutex<Cursor>,
}

struct Cursor {
    clock: ClockGuard,
    ms: u64,
    seq: u64,
}

/// What is left of a request after one attempt.
enum Owed {
    /// Every id was issued.
    Nothing,
    /// The wall clock is a little behind an earlier reading: wait this long, then go on.
    ClockBehind(Duration),
    /// Borrowing reached its limit with this many ids still owed: wait for the clock.
    Borrowed(u32),
}

impl UniqueIssuer {
    /// An issuer for `worker` (0..1024, assigned by the Raft state machine).
    pub fn new(worker: u16) -> Self {
        Self::with_clock(worker, Arc::new(SystemClock))
    }

    /// An issuer reading `wall` (a clock the tests step back).
    fn with_clock(worker: u16, wall: Arc<dyn WallClock>) -> Self {
        Self {
            worker,
            wall,
            state: Mutex::new(Cursor {
                clock: ClockGuard::default(),
                ms: 0,
                seq: 0,
            }),
        }
    }

    /// This issuer's worker id.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// `count` ids, as one block per millisecond used. When a millisecond's 4,096 ids are
    /// spent, the next millisecond is borrowed, up to `MAX_AHEAD_MS` ahead of the clock;
    /// beyond that the caller waits for the clock. Waits are on tokio's timer with the cursor
    /// unlocked, so they hold up neither the runtime thread nor other requests.
    pub async fn issue(&self, count: u32) -> Vec<IdBlock> {
        let mut blocks = Vec::new();
        let mut left = count;
        let mut may_wait_for_clock = true;
        loop {
            match self.try_issue(left, may_wait_for_clock, &mut blocks) {
                Owed::Nothing => return blocks,
                Owed::ClockBehind(wait) => {
                    // One wait per request; see `ClockGuard::read`.
                    may_wait_for_clock = false;
                    tokio::time::sleep(wait).await;
                }
                Owed::Borrowed(rest) => {
                    left = rest;
                    tokio::time::sleep(BORROW_WAIT).await;
                }
            }
        }
    }

    /// Issues as many of `count` ids as the borrowing limit allows into `blocks`, under the
    /// cursor lock; never waits.
    fn try_issue(&self, count: u32, may_wait_for_clock: bool, blocks: &mut Vec<IdBlock>) -> Owed {
        let mut cursor = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = match cursor.clock.read(self.wall.now_ms(), may_wait_for_clock) {
            Reading::At(ms) => ms,
            Reading::Behind(wait) => return Owed::ClockBehind(wait),
        };
        if now > cursor.ms {
            cursor.ms = now;
            cursor.seq = 0;
        }
        let mut left = u64::from(count);
        while left > 0 {
            if cursor.seq == PER_MS {
                if cursor.ms >= now + MAX_AHEAD_MS {
                    break;
                }
                cursor.ms += 1;
                cursor.seq = 0;
            }
            let n = left.min(PER_MS - cursor.seq);
            blocks.push(IdBlock {
                first: unique_id(cursor.ms, self.worker, cursor.seq),
                count: n as u32,
            });
            cursor.seq += n;
            left -= n;
        }
        match left {
            0 => Owed::Nothing,
            // `left` never exceeds the `count: u32` it started from.
            rest => Owed::Borrowed(rest as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tokio::time::Instant;

    use super::*;
    use crate::clock::{TestClock, Ticker};
    use crate::services::idgen::layout::{unique_worker, EPOCH_MS, SEQ_BITS, WORKER_BITS};

    const START_MS: u64 = EPOCH_MS + 1_000_000;

    fn issuer(worker: u16) -> (UniqueIssuer, Arc<TestClock>) {
        let clock = Arc::new(TestClock::starting_at(START_MS));
        (UniqueIssuer::with_clock(worker, clock.clone()), clock)
    }

    fn ids(blocks: &[IdBlock]) -> Vec<u64> {
        blocks.iter().flat_map(IdBlock::ids).collect()
    }

    /// The Unix millisecond of a unique id.
    fn ms_of(id: u64) -> u64 {
        (id >> (WORKER_BITS + SEQ_BITS)) + EPOCH_MS
    }

    fn steps_back(issuer: &UniqueIssuer) -> u64 {
        issuer.state.lock().expect("cursor lock").clock.steps_back()
    }

    #[tokio::test(start_paused = true)]
    async fn ids_are_unique_and_increasing_across_borrowed_milliseconds() {
        let (issuer, _clock) = issuer(7);
        let mut seen = HashSet::new();
        let mut last = 0;
        for _ in 0..50 {
            for id in ids(&issuer.issue(1000).await) {
                assert!(id > last, "{id} after {last}");
                assert!(seen.insert(id));
                assert_eq!(unique_worker(id), 7);
                last = id;
            }
        }
        assert_eq!(seen.len(), 50_000);
    }

    #[tokio::test(start_paused = true)]
    async fn borrowing_never_runs_far_ahead_of_the_clock() {
        let (issuer, clock) = issuer(1);
        let started = Instant::now();
        let blocks = issuer.issue(4096 * 40).await;
        let last = blocks.last().expect("ids").first;
        assert!(ms_of(last) <= clock.now_ms() + MAX_AHEAD_MS);
        // 40 milliseconds' worth of ids wait for the clock until it is MAX_AHEAD_MS behind.
        assert!(started.elapsed() >= Duration::from_millis(40 - MAX_AHEAD_MS - 1));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_small_clock_step_back_is_waited_out_on_the_timer_while_other_tasks_run() {
        let (issuer, clock) = issuer(3);
        let before = ids(&issuer.issue(1).await)[0];
        let ticker = Ticker::start().await;

        clock.step(-3);
        let (asked, ticks_before) = (Instant::now(), ticker.count());
        let after = ids(&issuer.issue(1).await)[0];
        // The request waited for the clock, on the timer: this one thread ran the ticker
        // meanwhile (a blocking sleep would have stopped it, and tokio's clock with it).
        assert!(asked.elapsed() >= Duration::from_millis(3));
        assert!(ticker.count() >= ticks_before + 2);
        assert!(after > before);
        assert_eq!(
            steps_back(&issuer),
            0,
            "a step waited out is not a step back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_clock_step_back_is_not_waited_for_and_ids_keep_increasing() {
        let (issuer, clock) = issuer(5);
        let mut last = *ids(&issuer.issue(10).await).last().expect("ids");
        clock.step(-1_000);
        let asked = Instant::now();
        for _ in 0..20 {
            for id in ids(&issuer.issue(100).await) {
                assert!(id > last, "{id} after {last}");
                last = id;
            }
        }
        assert_eq!(asked.elapsed(), Duration::ZERO, "no wait for a large step");
        assert_eq!(steps_back(&issuer), 1, "one step, counted once");
    }
}
