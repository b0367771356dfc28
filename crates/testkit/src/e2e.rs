//! The Node end-to-end tests in `tests/e2e` (official socket.io clients, browser scripts), run
//! from gru's Rust tests against the built `gru`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/e2e`, with its packages installed from the lockfile first when they are missing (a
/// fresh checkout, or one from before a package was added; `.ci/run` installs them).
pub fn dir() -> PathBuf {
    // The kit lives in the gru workspace, at `crates/testkit`.
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    let wanted = ["sio2", "sio4", "playwright-core"];
    if !wanted
        .iter()
        .all(|p| e2e.join("node_modules").join(p).exists())
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&e2e)
            .status()
            .expect("npm is needed for the end-to-end tests");
        assert!(status.success(), "npm ci in tests/e2e failed");
    }
    e2e
}

/// Runs Node's test runner in `tests/e2e` on `files` (all of them when empty) against the
/// built `gru` (`GRU_BIN`, [`crate::gru`]), with `env` added. Fails unless every test passed
/// and some ran; returns the runner's output.
pub fn node_tests(files: &[&str], env: &[(&str, String)]) -> String {
    let e2e = dir();
    // A test that hangs fails after this long instead of holding the run until nextest's
    // deadline, which kills it without its output.
    let out = Command::new("node")
        .arg("--test")
        .arg("--test-timeout=180000")
        .args(files)
        .current_dir(&e2e)
        .env("GRU_BIN", crate::gru().path())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("node is needed for the end-to-end tests");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed");
    assert!(stdout.contains("# fail 0"), "some end-to-end test failed");
    assert!(!stdout.contains("# pass 0"), "no end-to-end test ran");
    stdout
}

/// A Node script of `tests/e2e` running beside a test, speaking JSON lines: one object per
/// line out of its stdout (other lines are echoed to stderr), commands in on its stdin. Killed
/// when dropped, so a failed test leaves nothing behind.
pub struct NodeScript {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    name: String,
}

impl NodeScript {
    /// Runs `node <script>` in `tests/e2e` with `env`, and `GRU_BIN` set to the built `gru`.
    pub fn start(script: &str, env: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;

        let mut child = Command::new("node")
            .arg(script)
            .current_dir(dir())
            .env("GRU_BIN", crate::gru().path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is needed for the end-to-end tests");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        let name = script.to_string();
        let echo = name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("[{echo}] {line}"),
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            name,
        }
    }

    /// Sends `command` as one line.
    pub fn send(&mut self, command: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the script's stdin is open");
        writeln!(stdin, "{command}").expect("the script reads its stdin");
    }

    /// Every line out so far, without waiting.
    pub fn drain(&mut self) -> Vec<serde_json::Value> {
        self.lines.try_iter().collect()
    }

    /// The next line out, within `deadline`; panics when the script exits first or the
    /// deadline passes.
    pub async fn next(&mut self, deadline: std::time::Duration) -> serde_json::Value {
        let until = std::time::Instant::now() + deadline;
        loop {
            match self.lines.try_recv() {
                Ok(v) => return v,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < until,
                        "{}: no line within {deadline:?}",
                        self.name
                    );
                    // Pace of polling the script's lines (a std channel) within the deadline.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    panic!("{}: exited while a line was awaited", self.name)
                }
            }
        }
    }

    /// The lines out until one whose `key` is `value` (included), within `deadline`; panics
    /// when the script exits first or the deadline passes.
    pub async fn until(
        &mut self,
        key: &str,
        value: &str,
        deadline: std::time::Duration,
    ) -> Vec<serde_json::Value> {
        let until = std::time::Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let v = self.next(left).await;
            let done = v[key] == value;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// Waits for the script to exit on its own within `deadline` and returns how, with the
    /// lines it printed meanwhile; panics after the deadline.
    pub async fn wait_exit(
        &mut self,
        deadline: std::time::Duration,
    ) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let until = std::time::Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            seen.extend(self.lines.try_iter());
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                seen.extend(self.lines.try_iter());
                return (status, seen);
            }
            assert!(
                std::time::Instant::now() < until,
                "{} did not exit within {deadline:?}",
                self.name
            );
            // Pace of polling for the script's exit within the deadline.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
