//! `e2e_official_clients_*`: runs `tests/e2e` (Node's test runner driving the official
//! `socket.io-client@4` and `socket.io-client@2`) against the built `gru`, once per transport
//! of direct WebSocket sessions (`spear.websocket`): every `gru` the suite starts takes the
//! choice from its environment. Long-polling and upgraded sessions are socketioxide's on both.
//! `sdk_unit_tests` runs the JavaScript SDK's unit tests (`clients/js`).

#[test]
fn e2e_official_clients_gru_websocket() {
    gru_testkit::e2e::node_tests(&[], &[("GRU_SPEAR__WEBSOCKET", "gru".to_string())]);
}

#[test]
fn e2e_official_clients_socketioxide_websocket() {
    gru_testkit::e2e::node_tests(&[], &[("GRU_SPEAR__WEBSOCKET", "socketioxide".to_string())]);
}

/// The JavaScript SDK's own unit tests (`clients/js`, `npm test` there: node's test runner,
/// against a fake spear), so that the one test command runs them too.
#[test]
fn sdk_unit_tests() {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    let out = std::process::Command::new("npm")
        .arg("test")
        .current_dir(&sdk)
        .output()
        .expect("npm is needed for the SDK's tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "npm test in clients/js failed");
    assert!(stdout.contains("# fail 0"), "some SDK test failed");
    assert!(!stdout.contains("# pass 0"), "no SDK test ran");
}
