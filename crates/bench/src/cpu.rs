//! CPU time of processes, read from `/proc/<pid>/stat`: what a benchmark's servers (and the
//! benchmark itself) spent over a measurement.

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux when
/// that cannot be asked).
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User + system CPU time of process `pid` so far, in clock ticks. `pid` "self" is this
/// process.
pub(crate) fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("no utime in /proc stat")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("no stime in /proc stat")?;
    Ok(utime + stime)
}

/// The CPU ticks of each process of `pids`.
pub(crate) fn cpu_ticks_each(pids: &[u32]) -> Result<Vec<u64>> {
    pids.iter().map(|p| cpu_ticks(&p.to_string())).collect()
}
