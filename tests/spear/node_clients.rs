//! `e2e_official_clients_*`: runs `tests/e2e` (Node's test runner driving the official
//! `socket.io-client@4` and `socket.io-client@2`) against the built `gru`, once per transport
//! of direct WebSocket sessions (`spear.websocket`): every `gru` the suite starts takes the
//! choice from its environment. Long-polling and upgraded sessions are socketioxide's on both.

#[test]
fn e2e_official_clients_gru_websocket() {
    gru_testkit::e2e::node_tests(&[], &[("GRU_SPEAR__WEBSOCKET", "gru".to_string())]);
}

#[test]
fn e2e_official_clients_socketioxide_websocket() {
    gru_testkit::e2e::node_tests(&[], &[("GRU_SPEAR__WEBSOCKET", "socketioxide".to_string())]);
}
