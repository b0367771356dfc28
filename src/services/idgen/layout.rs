//! Bit layouts of ids.
//!
//! Strict ids: `ms since EPOCH (41 bits) | sequence (12 bits)` — 53 bits, so they survive
//! `JSON.parse` (below 2^53) and sort by time. One issuer needs no worker bits.
//! Unique ids (snowflake): `ms since EPOCH (41 bits) | worker (10 bits) | sequence (12 bits)`.
//! 41 bits of milliseconds last 69 years from the epoch.

/// The epoch of both layouts: 2025-01-01T00:00:00Z, in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_735_689_600_000;
/// Sequence bits: 4,096 ids per millisecond per issuer.
pub const SEQ_BITS: u32 = 12;
/// Worker bits of unique ids.
pub const WORKER_BITS: u32 = 10;
/// Ids per millisecond per issuer.
pub const PER_MS: u64 = 1 << SEQ_BITS;

/// The first strict id of millisecond `unix_ms`.
pub fn strict_floor(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(EPOCH_MS) << SEQ_BITS
}

/// The Unix millisecond a strict id belongs to.
pub fn strict_ms(id: u64) -> u64 {
    (id >> SEQ_BITS) + EPOCH_MS
}

/// A unique id.
pub fn unique_id(unix_ms: u64, worker: u16, seq: u64) -> u64 {
    (unix_ms.saturating_sub(EPOCH_MS) << (WORKER_BITS + SEQ_BITS))
        | (u64::from(worker) << SEQ_BITS)
        | (seq & (PER_MS - 1))
}

/// The worker of a unique id.
pub fn unique_worker(id: u64) -> u16 {
    ((id >> SEQ_BITS) & ((1 << WORKER_BITS) - 1)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_ids_stay_below_2_pow_53_for_69_years() {
        let end = EPOCH_MS + (1u64 << 41) - 1;
        assert!(strict_floor(end) + PER_MS - 1 < 1u64 << 53);
        assert_eq!(strict_ms(strict_floor(end) + 7), end);
    }

    #[test]
    fn strict_ids_sort_by_time() {
        assert!(strict_floor(EPOCH_MS + 2) > strict_floor(EPOCH_MS + 1) + PER_MS - 1);
    }

    #[test]
    fn unique_ids_carry_their_worker() {
        let id = unique_id(EPOCH_MS + 123_456, 1023, 4095);
        assert_eq!(unique_worker(id), 1023);
        assert_eq!(id & (PER_MS - 1), 4095);
        assert!(unique_id(EPOCH_MS + 1, 0, 0) > unique_id(EPOCH_MS, 1023, 4095));
    }
}
