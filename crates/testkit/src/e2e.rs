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
