//! Environment overrides: `GRU_<SECTION>__<FIELD>=value`, nodes by id as
//! `GRU_NODES__<id>__<FIELD>[__<FIELD>]`. `__` separates path segments; segments are lowercased.
//! A value that parses as a TOML value (number, bool, array, quoted string) is taken as one,
//! anything else as a plain string.

use toml::Value;

use super::ConfigError;

/// The `GRU_…__…` variables among `env`, sorted by name so application order is stable.
pub(super) fn overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with("GRU_") && name.contains("__"))
        .collect();
    found.sort();
    found
}

fn parse_value(raw: &str) -> Value {
    // Wrap in a one-key document so TOML's own value grammar decides.
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Applies `overrides` onto the parsed document; returns the variable names applied.
pub(super) fn apply(
    doc: &mut Value,
    overrides: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for (name, raw) in overrides {
        let invalid = |reason: String| ConfigError::Invalid {
            field: name.clone(),
            reason,
        };
        let path: Vec<String> = name["GRU_".len()..]
            .split("__")
            .map(str::to_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(invalid("empty path segment".into()));
        }
        let mut cursor = &mut *doc;
        let mut segments = path.iter().peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            if segment == "nodes" && !last {
                let id_text = segments.next().map(String::as_str).unwrap_or_default();
                let id: i64 = id_text
                    .parse()
                    .map_err(|_| invalid(format!("`{id_text}` is not a node id")))?;
                let nodes = cursor
                    .get_mut("nodes")
                    .and_then(Value::as_array_mut)
                    .ok_or_else(|| invalid("the config has no [[nodes]]".into()))?;
                cursor = nodes
                    .iter_mut()
                    .find(|n| n.get("id").and_then(Value::as_integer) == Some(id))
                    .ok_or_else(|| invalid(format!("no node with id {id} in the config")))?;
                if segments.peek().is_none() {
                    return Err(invalid("names a node but no field of it".into()));
                }
                continue;
            }
            let table = cursor.as_table_mut().ok_or_else(|| {
                invalid(format!("`{segment}` is inside a value that is not a table"))
            })?;
            if last {
                table.insert(segment.clone(), parse_value(raw));
                break;
            }
            cursor = table
                .entry(segment.clone())
                .or_insert_with(|| Value::Table(toml::Table::new()));
        }
        names.push(name.clone());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::super::{ClusterConfig, RelayKind};

    const EXAMPLE: &str = include_str!("../../cluster.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scalar_overrides_apply() {
        let config = ClusterConfig::from_toml_str(
            EXAMPLE,
            env(&[
                ("GRU_RAFT__HEARTBEAT_INTERVAL_MS", "150"),
                ("GRU_RELAY__KIND", "rocketmq"),
                ("GRU_LOG", "debug"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.raft.heartbeat_interval_ms, 150);
        assert_eq!(config.relay.kind, RelayKind::RocketMq);
    }

    #[test]
    fn nodes_are_addressed_by_id() {
        let config = ClusterConfig::from_toml_str(
            EXAMPLE,
            env(&[
                ("GRU_NODES__3__DATA_DIR", "/var/lib/gru3"),
                ("GRU_NODES__3__LISTEN__HTTP", "127.0.0.1:9999"),
            ]),
        )
        .expect("valid");
        let node = config.node(3).expect("node 3");
        assert_eq!(node.data_dir.to_str(), Some("/var/lib/gru3"));
        assert_eq!(node.listen.http.port(), 9999);
    }

    #[test]
    fn an_unknown_node_id_is_refused_naming_the_variable() {
        let err = ClusterConfig::from_toml_str(EXAMPLE, env(&[("GRU_NODES__42__DATA_DIR", "/x")]))
            .expect_err("refused");
        assert!(err.to_string().contains("GRU_NODES__42__DATA_DIR"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused_naming_the_variable() {
        let err = ClusterConfig::from_toml_str(EXAMPLE, env(&[("GRU_RAFT__HEARTBEAT", "5")]))
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("GRU_RAFT__HEARTBEAT") && msg.contains("heartbeat"),
            "{msg}"
        );
    }

    #[test]
    fn overridden_values_are_validated() {
        let err = ClusterConfig::from_toml_str(
            EXAMPLE,
            env(&[("GRU_RAFT__HEARTBEAT_INTERVAL_MS", "5000")]),
        )
        .expect_err("refused");
        assert!(
            err.to_string().contains("raft.heartbeat_interval_ms"),
            "{err}"
        );
    }
}
