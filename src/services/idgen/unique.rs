//! Unique mode: snowflake ids from this node's own worker id, no coordination per id.

use std::sync::Mutex;

use super::clock::ClockGuard;
use super::layout::{unique_id, PER_MS};
use super::IdBlock;

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
    /// spent, the next millisecond is borrowed rather than waited for.
    pub fn issue(&self, count: u32) -> Vec<IdBlock> {
        let mut cursor = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = cursor.clock.now_ms();
        if now > cursor.ms {
            cursor.ms = now;
            cursor.seq = 0;
        }
        let mut left = u64::from(count);
        let mut blocks = Vec::new();
        while left > 0 {
            if cursor.seq == PER_MS {
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
        blocks
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
            for block in issuer.issue(1000) {
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
}
