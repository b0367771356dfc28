//! `e2e_official_clients`: runs `tests/e2e` (Node's test runner driving the official
//! `socket.io-client@4` and `socket.io-client@2`) against the built `gru`.

use std::path::Path;
use std::process::Command;

#[test]
fn e2e_official_clients() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    if !e2e.join("node_modules").exists() {
        // .ci/run installs these; a fresh checkout gets them here, from the lockfile.
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&e2e)
            .status()
            .expect("npm is needed for the end-to-end tests");
        assert!(status.success(), "npm ci in tests/e2e failed");
    }
    let out = Command::new("node")
        .arg("--test")
        .current_dir(&e2e)
        .env("GRU_BIN", env!("CARGO_BIN_EXE_gru"))
        .output()
        .expect("node is needed for the end-to-end tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test failed");
    assert!(stdout.contains("# fail 0"), "some end-to-end test failed");
    assert!(!stdout.contains("# pass 0"), "no end-to-end test ran");
}
