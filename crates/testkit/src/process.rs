//! Child processes that cannot outlive their owner: every one is killed (SIGKILL) and reaped
//! when its [`KillOnDrop`] drops, also while a test panics or a benchmark fails, and writes its
//! stdout and stderr to a log file.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often an exit is polled.
const POLL: Duration = Duration::from_millis(20);

/// Why a child process could not be started or is gone.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be opened.
    #[error("cannot open the log {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started (not installed, not executable).
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// What the process is.
        name: String,
        /// The program.
        program: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The process has exited when it should be running.
    #[error("{name} exited early ({status})")]
    Exited {
        /// What the process was.
        name: String,
        /// How it ended.
        status: ExitStatus,
    },
}

/// A child process, killed and reaped on drop.
#[derive(Debug)]
pub struct KillOnDrop {
    /// What the process is, for errors.
    name: String,
    /// The process.
    child: Child,
}

impl KillOnDrop {
    /// Starts `cmd` with no stdin and its stdout and stderr appended to `log` (created if
    /// missing); `name` says what it is in errors.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self, ProcessError> {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| ProcessError::Log {
                    path: log.to_path_buf(),
                    source,
                })
        };
        let (out, err) = (open()?, open()?);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                name: name.to_string(),
                program: cmd.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        Ok(Self {
            name: name.to_string(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails when the process has already exited.
    pub fn check_alive(&mut self) -> Result<(), ProcessError> {
        match self.exited() {
            Some(status) => Err(ProcessError::Exited {
                name: self.name.clone(),
                status,
            }),
            None => Ok(()),
        }
    }

    /// Sends signal `sig` (`"HUP"`, `"TERM"`, …) with `kill`; whether it was delivered.
    pub fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits (blocking, up to `deadline`) for the process to exit by itself; its exit status,
    /// or `None` while it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then waits up to `deadline` for the exit: its status, or `None` when the
    /// process did not stop in time (it is still killed on drop).
    pub fn stop(&mut self, deadline: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(deadline)
    }
}

impl Drop for KillOnDrop {
    /// Kills and reaps the process. SIGKILL: nothing the kit runs keeps anything worth a
    /// graceful stop, and a stop that hangs would hang the test or benchmark.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident memory of process `pid`, KiB (`VmRSS` in `/proc/<pid>/status`); `None` when
/// there is no such process.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The peak resident memory of process `pid` since it started, KiB (`VmHWM`): what a burst
/// cost even after it was freed.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The last `lines` lines of the log at `path` (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
