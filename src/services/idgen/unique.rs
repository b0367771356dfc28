//! Unique mode: snowflake ids from this node's own worker id, no coordination per id.

use std::sync::Mutex;
use std::time::Duration;

use super::clock::ClockGuard;
use super::layout::{unique_id, PER_MS};
use super::IdBlock;

/// How far ahead of the clock borrowing may run. A restarted node must not reuse a borrowed
/// millisecond, and it takes far longer than this to restart and get its worker id back.
pub(crate) const MAX_AHEAD_MS: u64 = 10;

/// Issues snowflake ids for one worker.
pub struct UniqueIssuer {
    worker: u16,
    state: Mutex<Cursor>,
}

struct Cursor {
    clock: ClockGuard,
    ms: u64,
    seq: u64,
}

impl UniqueIssuer {
    /// An issuer for `worker` (0..1024, assigned by the Raft state machine).
    pub fn new(worker: u16) -> Self {
        Self {
            worker,
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
    /// beyond that the caller waits for the clock.
    pub async fn issue(&self, count: u32) -> Vec<IdBlock> {
        let mut blocks = Vec::new();
        let mut left = count;
        loop {
            match self.try_issue(left, &mut blocks) {
                0 => return blocks,
                rest => {
                    left = rest;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    /// Like [`Self::issue`] for a caller that may block its thread (benchmarks).
    pub fn issue_blocking(&self, count: u32) -> Vec<IdBlock> {
        let mut blocks = Vec::new();
        let mut left = count;
        while left > 0 {
            left = self.try_issue(left, &mut blocks);
            if left > 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        blocks
    }

    /// Issues as many of `count` ids as the borrowing limit allows into `blocks`; returns how
    /// many are still owed.
    fn try_issue(&self, count: u32, blocks: &mut Vec<IdBlock>) -> u32 {
        let mut cursor = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = cursor.clock.now_ms();
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
        left as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_increasing_across_borrowed_milliseconds() {
        let issuer = UniqueIssuer::new(7);
        let mut seen = HashSet::new();
        let mut last = 0;
        for _ in 0..50 {
            for block in issuer.issue_blocking(1000) {
                for id in block.first..block.first + u64::from(block.count) {
                    assert!(id > last, "{id} after {last}");
                    assert!(seen.insert(id));
                    assert_eq!(super::super::layout::unique_worker(id), 7);
                    last = id;
                }
            }
        }
        assert_eq!(seen.len(), 50_000);
    }

    #[test]
    fn borrowing_never_runs_far_ahead_of_the_clock() {
        let issuer = UniqueIssuer::new(1);
        let start = crate::clock::unix_ms();
        let blocks = issuer.issue_blocking(4096 * 40);
        let last = blocks.last().expect("ids").first;
        let last_ms = (last >> 22) + super::super::layout::EPOCH_MS;
        assert!(last_ms <= crate::clock::unix_ms() + MAX_AHEAD_MS);
        // 40 milliseconds' worth of ids cannot be issued in much less than 30 ms.
        assert!(crate::clock::unix_ms() >= start + 40 - MAX_AHEAD_MS - 1);
    }
}
