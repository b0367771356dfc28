//! The rules a config must meet before anything starts. Each refusal names the field.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{ClusterConfig, ConfigError, RelayKind, Role};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(super) fn validate(config: &ClusterConfig) -> Result<(), ConfigError> {
    nodes(config)?;
    addresses(config)?;
    raft(config)?;
    spear(config)?;
    relay(config)?;
    auth(config)
}

fn nodes(config: &ClusterConfig) -> Result<(), ConfigError> {
    if config.nodes.is_empty() {
        return Err(invalid("nodes", "the config lists no node"));
    }
    let mut ids = HashMap::new();
    let mut dirs = HashMap::new();
    for (i, node) in config.nodes.iter().enumerate() {
        if node.id == 0 {
            return Err(invalid(format!("nodes[{i}].id"), "node ids start at 1"));
        }
        if let Some(other) = ids.insert(node.id, i) {
            return Err(invalid(
                format!("nodes[{i}].id"),
                format!("id {} is already used by nodes[{other}]", node.id),
            ));
        }
        if node.roles.is_empty() {
            return Err(invalid(
                format!("nodes[{i}].roles"),
                "a node needs at least one role",
            ));
        }
        let mut seen = Vec::new();
        for role in &node.roles {
            if seen.contains(role) {
                return Err(invalid(
                    format!("nodes[{i}].roles"),
                    format!("role `{role}` is listed twice"),
                ));
            }
            seen.push(*role);
        }
        if node.join && !node.is_core() {
            return Err(invalid(
                format!("nodes[{i}].join"),
                "only a core node can join the Raft group",
            ));
        }
        if node.data_dir.as_os_str().is_empty() {
            return Err(invalid(format!("nodes[{i}].data_dir"), "must not be empty"));
        }
        if let Some(other) = dirs.insert(node.data_dir.clone(), i) {
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
            "no core node that forms the group: at least one node needs role \"core\" without join = true",
        ));
    }
    Ok(())
}

fn addresses(config: &ClusterConfig) -> Result<(), ConfigError> {
    let mut bound: HashMap<SocketAddr, String> = HashMap::new();
    for (i, node) in config.nodes.iter().enumerate() {
        let l = &node.listen;
        let listed = [
            ("grpc", Some(l.grpc)),
            ("http", Some(l.http)),
            ("sio", l.sio),
            ("gossip", Some(l.gossip)),
        ];
        for (name, addr) in listed {
            let Some(addr) = addr else { continue };
            let field = format!("nodes[{i}].listen.{name}");
            if addr.port() == 0 {
                return Err(invalid(
                    field,
                    "port 0 is not allowed: others must know the port",
                ));
            }
            if let Some(other) = bound.get(&addr) {
                return Err(invalid(
                    field,
                    format!("{addr} is the same address as {other}"),
                ));
            }
            bound.insert(addr, field);
        }
        let a = &node.advertise;
        let advertised = [
            ("grpc", &a.grpc),
            ("http", &a.http),
            ("sio", &a.sio),
            ("gossip", &a.gossip),
        ];
        for (name, value) in advertised {
            if let Some(value) = value {
                let ok = value.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
                });
                if !ok {
                    return Err(invalid(
                        format!("nodes[{i}].advertise.{name}"),
                        format!("{value:?} is not host:port"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn raft(config: &ClusterConfig) -> Result<(), ConfigError> {
    let r = &config.raft;
    if r.heartbeat_interval_ms < 10 {
        return Err(invalid("raft.heartbeat_interval_ms", "must be at least 10"));
    }
    if r.heartbeat_interval_ms >= r.election_timeout_min_ms {
        return Err(invalid(
            "raft.heartbeat_interval_ms",
            format!(
                "must be below raft.election_timeout_min_ms ({})",
                r.election_timeout_min_ms
            ),
        ));
    }
    if r.election_timeout_min_ms >= r.election_timeout_max_ms {
        return Err(invalid(
            "raft.election_timeout_min_ms",
            format!(
                "must be below raft.election_timeout_max_ms ({})",
                r.election_timeout_max_ms
            ),
        ));
    }
    if r.rpc_timeout_ms == 0 || r.rpc_timeout_ms >= r.election_timeout_min_ms {
        return Err(invalid(
            "raft.rpc_timeout_ms",
            format!(
                "must be between 1 and raft.election_timeout_min_ms ({})",
                r.election_timeout_min_ms
            ),
        ));
    }
    if r.snapshot_after_logs == 0 {
        return Err(invalid("raft.snapshot_after_logs", "must be at least 1"));
    }
    Ok(())
}

fn spear(config: &ClusterConfig) -> Result<(), ConfigError> {
    let s = &config.spear;
    if s.lease_ttl_ms > 60_000 {
        return Err(invalid("spear.lease_ttl_ms", "must be at most 60000"));
    }
    if s.lease_renew_ms == 0 || s.lease_renew_ms.saturating_mul(2) > s.lease_ttl_ms {
        return Err(invalid(
            "spear.lease_renew_ms",
            format!(
                "must be at least 1 and at most half of spear.lease_ttl_ms ({})",
                s.lease_ttl_ms
            ),
        ));
    }
    if s.lease_sweep_ms < 10 || s.lease_sweep_ms >= s.lease_ttl_ms {
        return Err(invalid(
            "spear.lease_sweep_ms",
            format!(
                "must be at least 10 and below spear.lease_ttl_ms ({})",
                s.lease_ttl_ms
            ),
        ));
    }
    Ok(())
}

fn relay(config: &ClusterConfig) -> Result<(), ConfigError> {
    let spears = config
        .nodes
        .iter()
        .filter(|n| n.has_role(Role::Spear))
        .count();
    if config.relay.kind == RelayKind::Local && spears > 1 {
        return Err(invalid(
            "relay.kind",
            format!("\"local\" only delivers within one process, and this config has {spears} spear nodes; use \"redis\" or \"rocketmq\""),
        ));
    }
    let url = &config.redis.url;
    if config.relay.kind == RelayKind::Redis
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        return Err(invalid(
            "redis.url",
            format!("{url:?} must start with redis:// or rediss://"),
        ));
    }
    Ok(())
}

fn auth(config: &ClusterConfig) -> Result<(), ConfigError> {
    let a = &config.auth;
    if a.business_secret.len() < 16 {
        return Err(invalid("auth.business_secret", "must be at least 16 bytes"));
    }
    if a.spear_secret.len() < 16 {
        return Err(invalid("auth.spear_secret", "must be at least 16 bytes"));
    }
    if a.business_secret == a.spear_secret {
        return Err(invalid(
            "auth.spear_secret",
            "must differ from auth.business_secret",
        ));
    }
    if a.token_ttl_secs == 0 {
        return Err(invalid("auth.token_ttl_secs", "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ClusterConfig;

    const EXAMPLE: &str = include_str!("../../cluster.toml");

    fn refused(text: &str) -> String {
        match ClusterConfig::from_toml_str(text, []) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases: Vec<(String, &str)> = vec![
            (EXAMPLE.replace("id = 2\n", "id = 1\n"), "nodes[1].id"),
            (EXAMPLE.replace("id = 2\n", "id = 0\n"), "nodes[1].id"),
            (
                EXAMPLE.replace("http = \"127.0.0.1:8102\"", "http = \"127.0.0.1:8101\""),
                "nodes[1].listen.http",
            ),
            (
                EXAMPLE.replace("http = \"127.0.0.1:8102\"", "http = \"127.0.0.1:0\""),
                "nodes[1].listen.http",
            ),
            (
                EXAMPLE.replace("data/node2", "data/node1"),
                "nodes[1].data_dir",
            ),
            (
                EXAMPLE.replace("roles = [\"core\"]", "roles = [\"ticket\"]"),
                "no core node",
            ),
            (
                EXAMPLE.replace("roles = [\"ticket\"]", "roles = []"),
                "nodes[5].roles",
            ),
            (
                EXAMPLE.replace("roles = [\"ticket\"]", "roles = [\"ticket\", \"ticket\"]"),
                "nodes[5].roles",
            ),
            (
                EXAMPLE.replace("roles = [\"ticket\"]", "roles = [\"ticket\"]\njoin = true"),
                "nodes[5].join",
            ),
            (
                EXAMPLE.replace("sio = \"127.0.0.1:31001\"", ""),
                "nodes[3].listen.sio",
            ),
            (
                EXAMPLE.replace("heartbeat_interval_ms = 100", "heartbeat_interval_ms = 700"),
                "raft.heartbeat_interval_ms",
            ),
            (
                EXAMPLE.replace(
                    "election_timeout_max_ms = 1200",
                    "election_timeout_max_ms = 600",
                ),
                "raft.election_timeout_min_ms",
            ),
            (
                EXAMPLE.replace("rpc_timeout_ms = 500", "rpc_timeout_ms = 0"),
                "raft.rpc_timeout_ms",
            ),
            (
                EXAMPLE.replace("snapshot_after_logs = 5000", "snapshot_after_logs = 0"),
                "raft.snapshot_after_logs",
            ),
            (
                EXAMPLE.replace("lease_renew_ms = 1000", "lease_renew_ms = 2000"),
                "spear.lease_renew_ms",
            ),
            (
                EXAMPLE.replace("lease_sweep_ms = 250", "lease_sweep_ms = 5"),
                "spear.lease_sweep_ms",
            ),
            (
                EXAMPLE.replace("lease_ttl_ms = 3000", "lease_ttl_ms = 90000"),
                "spear.lease_ttl_ms",
            ),
            (
                EXAMPLE.replace("kind = \"redis\"", "kind = \"local\""),
                "relay.kind",
            ),
            (
                EXAMPLE.replace("url = \"redis://127.0.0.1:6379\"", "url = \"http://x\""),
                "redis.url",
            ),
            (
                EXAMPLE.replace("change-me-business-secret-0001", "short"),
                "auth.business_secret",
            ),
            (
                EXAMPLE.replace(
                    "change-me-spear-secret-0000001",
                    "change-me-business-secret-0001",
                ),
                "auth.spear_secret",
            ),
            (
                EXAMPLE.replace("token_ttl_secs = 86400", "token_ttl_secs = 0"),
                "auth.token_ttl_secs",
            ),
        ];
        for (text, field) in cases {
            assert_ne!(text, EXAMPLE, "the case for {field} changed nothing");
            let msg = refused(&text);
            assert!(msg.contains(field), "expected {field} in: {msg}");
        }
    }

    #[test]
    fn unknown_roles_and_modes_are_refused_by_name() {
        let msg = refused(&EXAMPLE.replace("roles = [\"ticket\"]", "roles = [\"tickett\"]"));
        assert!(msg.contains("tickett") && msg.contains("roles"), "{msg}");
        let msg = refused(&EXAMPLE.replace("mode = \"strict\"", "mode = \"sorted\""));
        assert!(msg.contains("sorted"), "{msg}");
    }

    #[test]
    fn advertised_addresses_must_be_host_port() {
        let text = EXAMPLE.replace(
            "join = false\n[nodes.listen]",
            "join = false\n[nodes.advertise]\ngrpc = \"node1\"\n[nodes.listen]",
        );
        assert_ne!(text, EXAMPLE);
        assert!(refused(&text).contains("nodes[0].advertise.grpc"));
    }
}
