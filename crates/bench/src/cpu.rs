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

/// The whole machine's CPU time so far, in clock ticks, over every core (`/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineTicks {
    /// Time in processes: user, nice and system.
    pub(crate) tasks: u64,
    /// The part of it in processes with a positive nice value (user time only), which
    /// yield to the measured ones.
    pub(crate) niced: u64,
    /// Time in interrupts: irq and softirq (where the loopback network's receive path runs),
    /// charged to no process.
    pub(crate) interrupts: u64,
}

/// Reads [`MachineTicks`].
pub(crate) fn machine_ticks() -> Result<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_machine_ticks(&stat)
}

/// [`MachineTicks`] from the text of `/proc/stat`, whose first line is
/// `cpu user nice system idle iowait irq softirq …`.
fn parse_machine_ticks(stat: &str) -> Result<MachineTicks> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().context("a field of /proc/stat is no number"))
        .collect::<Result<_>>()?;
    let field = |i: usize| {
        fields
            .get(i)
            .copied()
            .with_context(|| format!("/proc/stat has no field {i}"))
    };
    Ok(MachineTicks {
        tasks: field(0)? + field(1)? + field(2)?,
        niced: field(1)?,
        interrupts: field(5)? + field(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_split_tasks_and_interrupts() {
        let stat = "cpu  100 2 30 5000 7 1 40 0 0 0\ncpu0 50 1 15 2500 3 0 20 0 0 0\n";
        assert_eq!(
            parse_machine_ticks(stat).expect("parses"),
            MachineTicks {
                tasks: 132,
                niced: 2,
                interrupts: 41
            }
        );
        assert!(parse_machine_ticks("intr 1 2\n").is_err());
        assert!(machine_ticks().is_ok());
    }
}
