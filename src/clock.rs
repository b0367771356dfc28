//! Wall-clock readings. Only the Raft leader's readings enter the replicated state (stamped
//! into commands), so replicas never consult their own clocks when applying.

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
