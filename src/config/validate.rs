//! The rules a config must meet before anything starts. Each refusal names the field by its
//! TOML path (`nodes[1].listen.http`), so an operator can find it in the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, PathBuf};

use super::knob::{check_range, Range};
use super::nodes::is_host_port;
use super::table::check_fields;
use super::{ClusterConfig, ConfigError, NodeConfig, RelayKind, RocketMqSection, Role};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks every rule; the first broken one is returned.
///
/// The bounds of numbers (and of secrets' lengths) are declared with each field and checked by
/// `check_fields`; what is here is what no bound says.
pub(super) fn validate(config: &ClusterConfig) -> Result<(), ConfigError> {
    cluster(config)?;
    nodes(config)?;
    addresses(config)?;
    check_fields("raft", &config.raft)?;
    check_fields("spear", &config.spear)?;
    http(config)?;
    check_fields("ticket", &config.ticket)?;
    relay(config)?;
    check_fields("history", &config.history)?;
    check_fields("stat", &config.stat)?;
    check_fields("redis", &config.redis)?;
    check_fields("idgen", &config.idgen)?;
    check_fields("gossip", &config.gossip)?;
    check_fields("server_api", &config.server_api)?;
    auth(config)?;
    api_keys(config)?;
    gossip_keys(config)
}

/// `auth.gossip_keys`: required as soon as there is another member to gossip with; each listed
/// once, and a secret of its own (their length is the field's bound).
fn gossip_keys(config: &ClusterConfig) -> Result<(), ConfigError> {
    let a = &config.auth;
    if a.gossip_keys.is_empty() && config.nodes.len() > 1 {
        return Err(invalid(
            "auth.gossip_keys",
            "must list at least one key when the cluster has more than one node: members \
             accept only gossip sealed with it (docs/security.md, \"Gossip\")",
        ));
    }
    let others: Vec<&String> = [&a.business_secret, &a.spear_secret]
        .into_iter()
        .chain(a.previous_business_secret.as_ref())
        .chain(a.previous_spear_secret.as_ref())
        .chain(a.api_keys.iter().map(|k| &k.secret))
        .chain(a.admin_keys.iter().map(|k| &k.secret))
        .collect();
    // Keys are never echoed into the error: it ends up in logs.
    for (i, key) in a.gossip_keys.iter().enumerate() {
        let field = format!("auth.gossip_keys[{i}]");
        if let Some(j) = a.gossip_keys[..i].iter().position(|k| k == key) {
            return Err(invalid(field, format!("is auth.gossip_keys[{j}] too")));
        }
        if others.contains(&key) {
            return Err(invalid(
                field,
                "must differ from every other secret and key of [auth]",
            ));
        }
    }
    Ok(())
}

/// Whether `name` may name an API key: it appears in logs, Redis keys and messages.
fn is_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn api_keys(config: &ClusterConfig) -> Result<(), ConfigError> {
    let a = &config.auth;
    let token_secrets = [
        Some(&a.business_secret),
        Some(&a.spear_secret),
        a.previous_business_secret.as_ref(),
        a.previous_spear_secret.as_ref(),
    ];
    let api = a
        .api_keys
        .iter()
        .map(|k| (k.name.as_str(), k.secret.as_str(), k.scopes.is_empty()));
    let admin = a
        .admin_keys
        .iter()
        .map(|k| (k.name.as_str(), k.secret.as_str(), k.scopes.is_empty()));
    keys(
        "auth.api_keys",
        api,
        "\"publish\", \"connections\" (or be left out for both)",
    )?;
    keys(
        "auth.admin_keys",
        admin,
        "\"admin\", \"read\" (or be left out for admin)",
    )?;
    // Every bearer secret opens one door only.
    let bearer = a
        .api_keys
        .iter()
        .map(|k| ("auth.api_keys", &k.secret))
        .chain(a.admin_keys.iter().map(|k| ("auth.admin_keys", &k.secret)));
    let mut seen: Vec<(String, &String)> = Vec::new();
    for (i, (table, secret)) in bearer.enumerate() {
        let at = if table == "auth.api_keys" {
            i
        } else {
            i - a.api_keys.len()
        };
        let field = format!("{table}[{at}].secret");
        // Secrets are never echoed into the error: it ends up in logs.
        if token_secrets.contains(&Some(secret)) {
            return Err(invalid(
                field,
                "must differ from every token secret of [auth]",
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, s)| *s == secret) {
            return Err(invalid(field, format!("is the secret of {other} too")));
        }
        seen.push((field.trim_end_matches(".secret").to_string(), secret));
    }
    Ok(())
}

/// The names, secrets and scopes of one table of keys: each name well formed and unique,
/// each secret printable (its length is the field's bound), each key with a scope.
fn keys<'a>(
    table: &str,
    entries: impl Iterator<Item = (&'a str, &'a str, bool)>,
    scopes: &str,
) -> Result<(), ConfigError> {
    let mut names: Vec<&str> = Vec::new();
    for (i, (name, secret, no_scope)) in entries.enumerate() {
        let field = |f: &str| format!("{table}[{i}].{f}");
        if !is_key_name(name) {
            return Err(invalid(
                field("name"),
                "must be 1 to 64 of A-Z a-z 0-9 . _ -",
            ));
        }
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(invalid(
                field("name"),
                format!("is the name of {table}[{j}] too"),
            ));
        }
        names.push(name);
        if secret.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(invalid(
                field("secret"),
                "must be printable ASCII without spaces (it travels in a header)",
            ));
        }
        if no_scope {
            return Err(invalid(
                field("scopes"),
                format!("must name at least one of {scopes}"),
            ));
        }
    }
    Ok(())
}

fn cluster(config: &ClusterConfig) -> Result<(), ConfigError> {
    if config.cluster.name.trim().is_empty() {
        return Err(invalid("cluster.name", "must not be empty"));
    }
    Ok(())
}

fn nodes(config: &ClusterConfig) -> Result<(), ConfigError> {
    if config.nodes.is_empty() {
        return Err(invalid("nodes", "the config lists no node"));
    }
    let mut ids = HashMap::new();
    let mut dirs = HashMap::new();
    for (i, node) in config.nodes.iter().enumerate() {
        check_fields(&format!("nodes[{i}]"), node)?;
        if let Some(other) = ids.insert(node.id, i) {
            return Err(invalid(
                format!("nodes[{i}].id"),
                format!("id {} is already used by nodes[{other}]", node.id),
            ));
        }
        roles(i, node)?;
        if node.join && !node.is_core() {
            return Err(invalid(
                format!("nodes[{i}].join"),
                "only a core node can join the Raft group",
            ));
        }
        if node.data_dir.as_os_str().is_empty() {
            return Err(invalid(format!("nodes[{i}].data_dir"), "must not be empty"));
        }
        if let Some(other) = dirs.insert(normalized(&node.data_dir), i) {
            return Err(invalid(
                format!("nodes[{i}].data_dir"),
                format!(
                    "{} is also the data_dir of nodes[{other}]",
                    node.data_dir.display()
                ),
            ));
        }
        if node.has_role(Role::Spear) && node.listen.sio.is_none() {
            return Err(invalid(
                format!("nodes[{i}].listen.sio"),
                "a spear node needs a socket.io address",
            ));
        }
    }
    if config.initial_voters().next().is_none() {
        return Err(invalid(
            "nodes",
            "no core node forms the cluster: give at least one node role \"core\" without join",
        ));
    }
    Ok(())
}

fn roles(i: usize, node: &NodeConfig) -> Result<(), ConfigError> {
    if node.roles.is_empty() {
        return Err(invalid(
            format!("nodes[{i}].roles"),
            "a node needs at least one role",
        ));
    }
    for (j, role) in node.roles.iter().enumerate() {
        if node.roles[..j].contains(role) {
            return Err(invalid(
                format!("nodes[{i}].roles"),
                format!("role \"{role}\" is listed twice"),
            ));
        }
    }
    Ok(())
}

/// `data/node1`, `./data/node1` and `data/node1/` name one directory; compare them as one.
fn normalized(path: &std::path::Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn addresses(config: &ClusterConfig) -> Result<(), ConfigError> {
    let mut bound: Vec<(SocketAddr, String)> = Vec::new();
    for (i, node) in config.nodes.iter().enumerate() {
        for (name, addr) in node.listen.named() {
            let Some(addr) = addr else { continue };
            let field = format!("nodes[{i}].listen.{name}");
            // The admin surface and the server API may share the public listener only where
            // nothing but this host reaches it (`gru dev`).
            if matches!(name, "admin" | "server_api") && addr == node.listen.http {
                if !addr.ip().is_loopback() {
                    return Err(invalid(
                        field,
                        format!(
                            "{addr} is the public listen.http: the {name} surface may share it \
                             only on a loopback address"
                        ),
                    ));
                }
                continue;
            }
            if name == "server_api" && !node.has_role(Role::Spear) {
                return Err(invalid(field, "only a spear node serves the server API"));
            }
            if addr.port() == 0 {
                return Err(invalid(
                    field,
                    "port 0 is not allowed: the other nodes must know the port",
                ));
            }
            if let Some((_, other)) = bound.iter().find(|(seen, _)| overlaps(*seen, addr)) {
                return Err(invalid(
                    field,
                    format!("{addr} is the same address as {other}"),
                ));
            }
            bound.push((addr, field));
        }
        for (name, value) in node.advertise.named() {
            match value {
                Some(value) if !is_host_port(value) => {
                    return Err(invalid(
                        format!("nodes[{i}].advertise.{name}"),
                        format!("{value:?} is not host:port with a numeric port"),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Two binds collide on one port when the IPs are equal or either is a wildcard: Linux refuses
/// `127.0.0.1:8101` once `0.0.0.0:8101` is bound (and `[::]` usually takes IPv4 too).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn http(config: &ClusterConfig) -> Result<(), ConfigError> {
    let h = &config.http;
    check_fields("http", h)?;
    if h.tls_cert.is_some() != h.tls_key.is_some() {
        return Err(invalid(
            if h.tls_cert.is_some() {
                "http.tls_key"
            } else {
                "http.tls_cert"
            },
            "tls_cert and tls_key go together: set both for TLS, or neither",
        ));
    }
    for (i, proxy) in h.trusted_proxies.iter().enumerate() {
        if crate::config::parse_network(proxy).is_none() {
            return Err(invalid(
                format!("http.trusted_proxies[{i}]"),
                format!("{proxy:?} is not an address (10.0.0.7) or a network (10.0.0.0/8)"),
            ));
        }
    }
    Ok(())
}

fn relay(config: &ClusterConfig) -> Result<(), ConfigError> {
    // Checked whatever the kind: a wrong section is a mistake even while it is unused.
    rocketmq(&config.rocketmq)?;
    let spears = config
        .nodes
        .iter()
        .filter(|n| n.has_role(Role::Spear))
        .count();
    match config.relay.kind {
        RelayKind::Local if spears > 1 => {
            return Err(invalid(
                "relay.kind",
                format!(
                    "\"local\" only delivers within one process, but there are {spears} spear \
                     nodes: use \"redis\" or \"rocketmq\""
                ),
            ))
        }
        RelayKind::Local => return Ok(()),
        RelayKind::Redis => {}
        // Accepting it would run the local relay: senders told "received" while the other
        // spears never get their messages.
        RelayKind::RocketMq if !cfg!(feature = "rocketmq") => {
            return Err(invalid(
                "relay.kind",
                "\"rocketmq\" is not built into this gru: build it with \
                 `cargo build --release --features rocketmq`, or use \"redis\"",
            ))
        }
        // A topic name is at most 127 characters: `gru_<name>_producer_<id>` must fit.
        RelayKind::RocketMq => check_range(
            "cluster.name",
            config.cluster.name.chars().count() as u64,
            &Range::at_most(64, " characters").why(
                "with relay.kind = \"rocketmq\" it is part of every topic and group name, \
                 which RocketMQ limits to 127",
            ),
        )?,
    }
    // Both relays that travel need Redis: the Redis relay carries messages through it, the
    // RocketMQ relay finds there which spears hold a user or a group.
    let url = &config.redis.url;
    if !url.starts_with("redis://") {
        let reason = if url.starts_with("rediss://") {
            format!("{url:?}: TLS (rediss://) is not built into this gru")
        } else {
            format!("{url:?} must start with redis://")
        };
        return Err(invalid("redis.url", reason));
    }
    Ok(())
}

fn rocketmq(section: &RocketMqSection) -> Result<(), ConfigError> {
    for addr in section.name_servers() {
        if !is_host_port(addr) {
            return Err(invalid(
                "rocketmq.name_server",
                format!("{addr:?} is not host:port (several name servers are separated by \";\")"),
            ));
        }
    }
    check_fields("rocketmq", section)
}

/// `[auth]`: the bounds of its fields and of its keys' (the secrets' lengths among them), then
/// the rules between its secrets.
fn auth(config: &ClusterConfig) -> Result<(), ConfigError> {
    let a = &config.auth;
    // Secrets are never echoed into the error: it ends up in logs.
    check_fields("auth", a)?;
    // One secret for both would let whoever signs token1 also mint spear tokens.
    if a.business_secret == a.spear_secret {
        return Err(invalid(
            "auth.spear_secret",
            "must differ from auth.business_secret",
        ));
    }
    let rotations = [
        (
            "auth.previous_business_secret",
            &a.previous_business_secret,
            "auth.business_secret",
            &a.business_secret,
        ),
        (
            "auth.previous_spear_secret",
            &a.previous_spear_secret,
            "auth.spear_secret",
            &a.spear_secret,
        ),
    ];
    for (field, previous, current_field, current) in rotations {
        let Some(previous) = previous else { continue };
        if previous == current {
            return Err(invalid(
                field,
                format!("is the same as {current_field}: a rotation needs a new secret"),
            ));
        }
    }
    // No secret that verifies token1 may also verify spear tokens, old ones included.
    let business = [
        Some(&a.business_secret),
        a.previous_business_secret.as_ref(),
    ];
    let spear = [
        ("auth.spear_secret", Some(&a.spear_secret)),
        (
            "auth.previous_spear_secret",
            a.previous_spear_secret.as_ref(),
        ),
    ];
    for (field, key) in spear {
        if key.is_some() && business.contains(&key) {
            return Err(invalid(
                field,
                "must differ from auth.business_secret and auth.previous_business_secret",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../cluster.toml");

    /// The example with `from` replaced by `to` exactly once, so a case cannot silently miss.
    fn edited(from: &str, to: &str) -> String {
        assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?} must occur once");
        EXAMPLE.replacen(from, to, 1)
    }

    /// The example with the first `from` after `anchor` replaced by `to`.
    fn edited_after(anchor: &str, from: &str, to: &str) -> String {
        let at = EXAMPLE.find(anchor).expect("the anchor is in the example");
        let (head, tail) = EXAMPLE.split_at(at);
        assert!(tail.contains(from), "{from:?} must follow {anchor:?}");
        format!("{head}{}", tail.replacen(from, to, 1))
    }

    fn refusal(text: &str) -> (String, String) {
        match ClusterConfig::from_toml_str(text, []) {
            Err(ConfigError::Invalid { field, reason }) => (field, reason),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// `(field refused, a "key = value" line of the example, the value that breaks a rule)`.
    /// The secrets' rows match only the start of their line; the `#` turns the rest into a
    /// comment.
    #[rustfmt::skip]
    const CASES: &[(&str, &str, &str)] = &[
        ("cluster.name",                 "name = \"gru-local\"", "\" \""),
        ("nodes[1].id",                  "id = 2", "1"),
        ("nodes[1].id",                  "id = 2", "0"),
        ("nodes[5].roles",               "roles = [\"ticket\", \"stat\"]", "[]"),
        ("nodes[5].roles",               "roles = [\"ticket\", \"stat\"]", "[\"stat\", \"stat\"]"),
        ("nodes[1].data_dir",            "data_dir = \"data/node2\"", "\"\""),
        ("nodes[1].data_dir",            "data_dir = \"data/node2\"", "\"./data/node1/\""),
        ("nodes[1].listen.http",         "http = \"127.0.0.1:8102\"", "\"127.0.0.1:0\""),
        ("nodes[1].listen.gossip",       "gossip = \"127.0.0.1:7202\"", "\"127.0.0.1:7102\""),
        ("nodes[5].listen.http",         "http = \"127.0.0.1:8106\"", "\"0.0.0.0:7101\""),
        ("raft.heartbeat_interval_ms",   "heartbeat_interval_ms = 50", "5"),
        ("raft.heartbeat_interval_ms",   "heartbeat_interval_ms = 50", "300"),
        ("raft.election_timeout_min_ms", "heartbeat_interval_ms = 50", "150"),
        ("raft.election_timeout_min_ms", "election_timeout_max_ms = 500", "250"),
        ("raft.rpc_timeout_ms",          "rpc_timeout_ms = 200", "0"),
        ("raft.rpc_timeout_ms",          "rpc_timeout_ms = 200", "250"),
        ("raft.snapshot_after_logs",     "snapshot_after_logs = 5000", "0"),
        ("spear.lease_renew_ms",         "lease_renew_ms = 1000", "1600"),
        ("spear.lease_renew_ms",         "lease_renew_ms = 1000", "0"),
        ("spear.lease_sweep_ms",         "lease_sweep_ms = 250", "5"),
        ("spear.lease_sweep_ms",         "lease_sweep_ms = 250", "3000"),
        ("spear.lease_ttl_ms",           "lease_ttl_ms = 3000", "90000"),
        ("relay.kind",                   "kind = \"redis\"", "\"local\""),
        ("rocketmq.name_server",         "name_server = \"127.0.0.1:9876\"", "\"127.0.0.1:9876;x\""),
        ("rocketmq.name_server",         "name_server = \"127.0.0.1:9876\"", "\"\""),
        ("rocketmq.queues",              "queues = 4", "0"),
        ("rocketmq.queues",              "queues = 4", "65"),
        ("rocketmq.send_timeout_ms",     "send_timeout_ms = 3000", "10"),
        ("history.max_messages",         "max_messages = 500", "0"),
        ("history.max_messages",         "max_messages = 500", "100001"),
        ("history.max_age_secs",         "max_age_secs = 3600", "0"),
        ("history.max_age_secs",         "max_age_secs = 3600", "604801"),
        ("redis.url",                    "url = \"redis://127.0.0.1:6379\"", "\"http://x\""),
        ("stat.presence_ttl_ms",         "presence_ttl_ms = 10000", "20000"),
        ("stat.heartbeat_ms",            "heartbeat_ms = 2000", "5000"),
        ("stat.flush_ms",                "flush_ms = 20", "0"),
        ("redis.timeout_ms",             "\ntimeout_ms = 1000\n", "10\n"),
        ("gossip.interval_ms",           "interval_ms = 200", "5"),
        ("gossip.dead_after_ms",         "dead_after_ms = 800", "300"),
        ("gossip.dead_after_ms",         "dead_after_ms = 800", "60001"),
        ("idgen.window_ms",              "window_ms = 3000", "100"),
        ("idgen.max_batch",              "max_batch = 10000", "0"),
        ("auth.business_secret",         "business_secret = \"change-me-business", "\"short\" #"),
        ("auth.spear_secret",            "spear_secret = \"change-me-spear", "\"short\" #"),
        ("auth.token_ttl_secs",          "token_ttl_secs = 86400", "0"),
        ("spear.max_requests_per_sec",   "max_requests_per_sec = 100", "0"),
        ("spear.auth_timeout_ms",        "auth_timeout_ms = 10000", "0"),
        ("spear.send_queue_packets",     "send_queue_packets = 256", "8"),
        ("spear.write_timeout_ms",       "write_timeout_ms = 10000\n# How often each", "10\n# How often each"),
        ("spear.ping_interval_ms",       "ping_interval_ms = 25000", "500"),
        ("spear.ping_timeout_ms",        "ping_timeout_ms = 20000", "400000"),
        ("spear.drain_ms",               "drain_ms = 2000", "70000"),
        ("http.header_read_timeout_ms",  "header_read_timeout_ms = 10000", "0"),
        ("http.body_timeout_ms",         "body_timeout_ms = 10000", "50"),
        ("http.drain_ms",                "drain_ms = 5000", "70000"),
        ("ticket.burst",                 "burst = 40", "0"),
        ("ticket.requests_per_ip_per_sec", "requests_per_ip_per_sec = 20", "2000000"),
        ("server_api.messages_per_sec",  "messages_per_sec = 10000", "2000000"),
        ("server_api.burst",             "burst = 20000", "0"),
        ("server_api.max_batch",         "max_batch = 1000\n# Largest", "10001\n# Largest"),
        ("server_api.max_body_bytes",    "max_body_bytes = 4194304", "100"),
        ("server_api.idempotency_window_secs", "idempotency_window_secs = 86400", "0"),
        ("server_api.idempotency_max_keys", "idempotency_max_keys = 100000", "0"),
        ("spear.max_new_channels_per_min", "max_new_channels_per_min = 60", "0"),
        ("spear.max_history_bytes_per_min", "max_history_bytes_per_min = 4194304", "10"),
        ("history.max_memory_bytes",     "max_memory_bytes = 268435456", "1000"),
        ("server_api.idempotency_max_bytes", "idempotency_max_bytes = 67108864", "100"),
        ("auth.api_keys[0].name",        "name = \"backend\"", "\"has space\""),
        ("auth.api_keys[0].secret",      "secret = \"change-me-server-api-key-000000000001\"", "\"short-secret\""),
        ("auth.api_keys[0].secret",      "secret = \"change-me-server-api-key-000000000001\"", "\"a secret with spaces in it, long enough\""),
        ("auth.api_keys[0].secret",      "secret = \"change-me-server-api-key-000000000001\"", "\"change-me-spear-secret-0000001\""),
        ("auth.api_keys[0].scopes",      "scopes = [\"publish\", \"connections\"]", "[]"),
    ];

    #[test]
    fn api_keys_are_unique_and_scopes_are_known() {
        let key = |name: &str, secret: &str| {
            format!("\n[[auth.api_keys]]\nname = \"{name}\"\nsecret = \"{secret}\"\n")
        };
        let anchor = "scopes = [\"publish\", \"connections\"]\n";
        let twice = edited(
            anchor,
            &format!(
                "{anchor}{}",
                key("backend", "another-server-api-key-00000000000001")
            ),
        );
        assert_eq!(refusal(&twice).0, "auth.api_keys[1].name");
        let same_secret = edited(
            anchor,
            &format!(
                "{anchor}{}",
                key("other", "change-me-server-api-key-000000000001")
            ),
        );
        assert_eq!(refusal(&same_secret).0, "auth.api_keys[1].secret");
        let unknown = edited(anchor, "scopes = [\"everything\"]\n");
        assert!(matches!(
            ClusterConfig::from_toml_str(&unknown, []),
            Err(ConfigError::Parse { .. })
        ));
        let ok = edited(
            anchor,
            &format!(
                "{anchor}{}",
                key("other", "another-server-api-key-00000000000001")
            ),
        );
        let config = ClusterConfig::from_toml_str(&ok, []).expect("two keys");
        assert_eq!(config.auth.api_keys.len(), 2);
        assert_eq!(
            config.auth.api_keys[1].scopes,
            crate::config::ApiScope::all()
        );
    }

    #[test]
    fn every_rule_names_its_field() {
        for (field, line, value) in CASES {
            let (key, _) = line.split_once(" = ").expect("a key = value line");
            let (got, reason) = refusal(&edited(line, &format!("{key} = {value}")));
            assert_eq!(&got, field, "{line} -> {value}: {reason}");
        }
        let others = [
            (
                "nodes[4].listen.sio",
                edited("sio = \"127.0.0.1:31002\"\n", ""),
            ),
            (
                "nodes[5].join",
                edited_after("id = 6\n", "join = false", "join = true"),
            ),
            (
                "auth.spear_secret",
                edited("spear-secret-0000001", "business-secret-0001"),
            ),
        ];
        for (field, text) in others {
            let (got, reason) = refusal(&text);
            assert_eq!(got, field, "{reason}");
        }
    }

    #[test]
    fn a_second_use_of_an_address_names_both_fields() {
        let (field, reason) = refusal(&edited("\"127.0.0.1:8102\"", "\"127.0.0.1:7101\""));
        assert_eq!(field, "nodes[1].listen.http");
        assert!(
            reason.contains("same address as nodes[0].listen.grpc"),
            "{reason}"
        );
        let (field, reason) = refusal(&edited("id = 2\n", "id = 3\n"));
        assert_eq!(field, "nodes[2].id");
        assert!(reason.contains("nodes[1]"), "{reason}");
    }

    #[test]
    fn a_cluster_without_an_initial_core_node_is_refused() {
        let no_core = EXAMPLE.replace("roles = [\"core\"]", "roles = [\"stat\"]");
        let (field, reason) = refusal(&no_core);
        assert_eq!(field, "nodes");
        assert!(reason.contains("core"), "{reason}");
        let all_join = EXAMPLE.replacen("join = false", "join = true", 3);
        assert_eq!(refusal(&all_join).0, "nodes");
    }

    #[test]
    fn advertised_addresses_must_be_host_port() {
        // The syntax itself is tested in nodes.rs; here, that the rule names the field.
        let text = edited_after("\n[nodes.advertise]", "127.0.0.1:7104", "node4");
        assert_eq!(refusal(&text).0, "nodes[3].advertise.grpc");
    }

    #[test]
    fn a_rocketmq_cluster_name_fits_in_a_topic_name() {
        let text = EXAMPLE
            .replacen("kind = \"redis\"", "kind = \"rocketmq\"", 1)
            .replacen(
                "name = \"gru-local\"",
                &format!("name = \"{}\"", "c".repeat(65)),
                1,
            );
        if cfg!(feature = "rocketmq") {
            let (field, reason) = refusal(&text);
            assert_eq!(field, "cluster.name", "{reason}");
            assert!(reason.contains("64"), "{reason}");
        } else {
            assert_eq!(refusal(&text).0, "relay.kind");
        }
    }

    #[test]
    fn previous_secrets_must_be_long_new_and_of_their_own_kind() {
        let with = |line: &str| {
            edited(
                "enforce_groups = false\n",
                &format!("enforce_groups = false\n{line}\n"),
            )
        };
        let cases = [
            (
                "auth.previous_business_secret",
                "previous_business_secret = \"short\"",
            ),
            (
                "auth.previous_business_secret",
                "previous_business_secret = \"change-me-business-secret-0001\"",
            ),
            (
                "auth.previous_spear_secret",
                "previous_spear_secret = \"short\"",
            ),
            (
                "auth.previous_spear_secret",
                "previous_spear_secret = \"change-me-spear-secret-0000001\"",
            ),
            (
                "auth.previous_spear_secret",
                "previous_spear_secret = \"change-me-business-secret-0001\"",
            ),
        ];
        for (field, line) in cases {
            let (got, reason) = refusal(&with(line));
            assert_eq!(got, field, "{line}: {reason}");
            assert!(!reason.contains("change-me"), "{reason}");
        }
        let rotating = with(
            "previous_business_secret = \"old-business-secret-0001\"\nprevious_spear_secret = \"old-spear-secret-00000001\"",
        );
        ClusterConfig::from_toml_str(&rotating, []).expect("a rotation in progress is valid");
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        let (_, reason) = refusal(&edited("spear-secret-0000001", "business-secret-0001"));
        assert!(!reason.contains("change-me"), "{reason}");
    }

    #[test]
    fn gossip_keys_are_required_with_peers_long_and_distinct() {
        const LINE: &str = "gossip_keys = [\"change-me-gossip-key-000000000000000001\"]";
        let keys = |list: &str| edited(LINE, &format!("gossip_keys = [{list}]"));
        let cases = [
            ("auth.gossip_keys", keys("")),
            ("auth.gossip_keys[0]", keys("\"short-gossip-key\"")),
            (
                "auth.gossip_keys[1]",
                keys("\"gossip-key-0000000000000000000000001\", \"gossip-key-0000000000000000000000001\""),
            ),
            ("auth.gossip_keys[0]", keys("\"change-me-server-api-key-000000000001\"")),
        ];
        for (field, text) in cases {
            let (got, reason) = refusal(&text);
            assert_eq!(got, field, "{reason}");
            assert!(!reason.contains("gossip-key-0"), "{reason}");
        }
        let rotating = keys(
            "\"gossip-key-new-00000000000000000000001\", \"change-me-gossip-key-000000000000000001\"",
        );
        let config = ClusterConfig::from_toml_str(&rotating, []).expect("a rotation is valid");
        assert_eq!(config.auth.gossip_keys.len(), 2);
        // One node has nobody to gossip with: no key needed.
        let alone = ClusterConfig::from_toml_str(super::super::tests::MINIMAL, []).expect("valid");
        assert!(alone.auth.gossip_keys.is_empty());
    }
}
