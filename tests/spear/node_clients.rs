//! `e2e_official_clients`: runs `tests/e2e` (Node's test runner driving the official
//! `socket.io-client@4` and `socket.io-client@2`) against the built `gru`.

#[test]
fn e2e_official_clients() {
    gru_testkit::e2e::node_tests(&[], &[]);
}
