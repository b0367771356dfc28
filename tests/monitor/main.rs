//! The monitor's pages in a real browser: headless Debian Chromium, driven by `playwright-core`
//! from the scripts in `tests/e2e/browser/`, against real clusters. `dashboard_browser`
//! (`dashboard.rs`): behind its login, the numbers the dashboard shows are the `/api/v1`
//! answers, every node is listed, the charts have a time axis and a gap where a spear was down,
//! the user lookup finds a user and disconnects it, and the panels dim when the stream is lost.
//! `playground_browser` (`playground.rs`): two users on two spears
//! exchange a unicast and a group message through the playground (on the JavaScript SDK).
//! `playground_resume` (`playground_resume.rs`): the first user's spear is killed and the
//! conversation goes on with nothing missing and nothing twice; then 3,000 messages a second
//! pour into the page, which stays responsive and counts them all. Each saves screenshots
//! under `<target>/screenshots/`.

mod dashboard;
mod playground;
mod playground_resume;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Where screenshots go: `screenshots/` in the target directory this test was built in.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // <target>/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// A browser script running, speaking JSON lines: its steps come out of `steps`, and
/// [`Script::reply`] answers one.
struct Script {
    child: Child,
    stdin: ChildStdin,
    steps: mpsc::Receiver<Value>,
    name: &'static str,
}

impl Script {
    /// Runs `tests/e2e/browser/<name>` with `env` (and `SCREENSHOTS`).
    fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        let e2e = gru_testkit::e2e::dir();
        let mut child = Command::new("node")
            .arg(format!("browser/{name}"))
            .current_dir(&e2e)
            .env("SCREENSHOTS", screenshot_dir())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is needed for the browser tests");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, steps) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(step) => {
                        if tx.send(step).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("[{name}] {line}"),
                }
            }
        });
        Self {
            child,
            stdin,
            steps,
            name,
        }
    }

    /// The next step named `want`, skipping progress notes; panics on a failure, an early
    /// exit, or after `deadline`.
    async fn step(&mut self, want: &str, deadline: Duration) -> Value {
        let until = std::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let step = match self.steps.try_recv() {
                Ok(step) => step,
                Err(mpsc::TryRecvError::Empty) if !left.is_zero() => {
                    // Pace of polling the script's lines (a std channel) within the deadline.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(mpsc::TryRecvError::Empty) => {
                    panic!("{}: no `{want}` within {deadline:?}", self.name)
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("{}: exited before `{want}`", self.name)
                }
            };
            eprintln!("[{}] {step}", self.name);
            match step["step"].as_str() {
                Some("failed") => panic!("{} failed: {}", self.name, step["error"]),
                Some(name) if name == want => return step,
                _ => {}
            }
        }
    }

    /// Tells the script its step was done.
    fn reply(&mut self) {
        writeln!(self.stdin, "done").expect("the script reads its stdin");
    }

    /// Waits for the script to exit on its own and checks that it succeeded.
    async fn finish(mut self, deadline: Duration) {
        let until = std::time::Instant::now() + deadline;
        loop {
            while let Ok(step) = self.steps.try_recv() {
                eprintln!("[{}] {step}", self.name);
                assert_ne!(
                    step["step"], "failed",
                    "{} failed: {}",
                    self.name, step["error"]
                );
            }
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "{} did not exit within {deadline:?}",
                self.name
            );
            // Pace of polling for the script's exit within the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // A failed test must not leave Chromium behind: node's exit takes the browser down.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
