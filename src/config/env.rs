//! Environment overrides: `GRU_<SECTION>__<FIELD>=value`, nodes by id as
//! `GRU_NODES__<id>__<FIELD>[__<FIELD>…]`.
//!
//! `__` separates path segments and segments are lowercased. Overrides are applied to the
//! parsed TOML tree before it is deserialized, so they go through the same strict
//! deserialization (unknown fields, wrong types) and the same `validate()` as the file.

use toml::{Table, Value};

use super::ConfigError;

/// The prefix every override starts with.
const PREFIX: &str = "GRU_";
/// What separates the segments of an override's path.
const SEPARATOR: &str = "__";

/// The overrides among `env`, sorted by name so that the result does not depend on the order
/// in which the environment lists them. Variables without `__` (`GRU_LOG`, `GRU_CONFIG`) are
/// other settings, not overrides, and are dropped.
pub(super) fn overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| is_override(name))
        .collect();
    found.sort();
    found
}

fn is_override(name: &str) -> bool {
    name.starts_with(PREFIX) && name.contains(SEPARATOR)
}

/// The overrides in the process environment.
///
/// `std::env::vars()` would panic on a variable that is not UTF-8; such a variable is ignored
/// unless it looks like an override, which is refused rather than silently skipped.
pub(super) fn from_process() -> Result<Vec<(String, String)>, ConfigError> {
    let mut found = Vec::new();
    for (name, value) in std::env::vars_os() {
        let lossy = name.to_string_lossy();
        if !is_override(&lossy) {
            continue;
        }
        match (name.to_str(), value.into_string()) {
            (Some(name), Ok(value)) => found.push((name.to_string(), value)),
            _ => {
                return Err(ConfigError::Invalid {
                    field: lossy.into_owned(),
                    reason: "the environment variable is not valid UTF-8".into(),
                })
            }
        }
    }
    Ok(overrides(found))
}

/// Applies `overrides` onto `doc`, the parsed file.
pub(super) fn apply(doc: &mut Table, overrides: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, raw) in overrides {
        apply_one(doc, name, raw).map_err(|reason| ConfigError::Invalid {
            field: name.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn apply_one(doc: &mut Table, name: &str, raw: &str) -> Result<(), String> {
    let path: Vec<String> = name[PREFIX.len()..]
        .split(SEPARATOR)
        .map(str::to_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err("the variable's name has an empty path segment".into());
    }
    // Nodes are an array in TOML but are addressed by id: positions shift whenever a node is
    // added, and a deployment knows its node's id, not where it sits in the file.
    let (table, fields) = match path.as_slice() {
        [nodes, id, fields @ ..] if nodes == "nodes" && !fields.is_empty() => {
            (node_by_id(doc, id)?, fields)
        }
        [nodes, ..] if nodes == "nodes" => {
            return Err("name a node by id and a field of it: GRU_NODES__<id>__<FIELD>".into())
        }
        fields => (doc, fields),
    };
    set(table, fields, raw)
}

fn node_by_id<'a>(doc: &'a mut Table, id_text: &str) -> Result<&'a mut Table, String> {
    let id: i64 = id_text
        .parse()
        .map_err(|_| format!("`{id_text}` is not a node id"))?;
    doc.get_mut("nodes")
        .and_then(Value::as_array_mut)
        .and_then(|nodes| {
            nodes
                .iter_mut()
                .filter_map(Value::as_table_mut)
                .find(|node| node.get("id").and_then(Value::as_integer) == Some(id))
        })
        .ok_or_else(|| format!("there is no node with id {id} in the config"))
}

/// Sets `fields` (a path below `table`, at least one segment) to the value of `raw`, creating
/// missing tables on the way: a section left out of the file takes its defaults, and an
/// override may still set one of its fields.
fn set(table: &mut Table, fields: &[String], raw: &str) -> Result<(), String> {
    let Some((last, parents)) = fields.split_last() else {
        return Err("the variable names no field".into());
    };
    let mut cursor = table;
    let mut walked = String::new();
    for segment in parents {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
        cursor = match cursor
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()))
        {
            Value::Table(inner) => inner,
            other => {
                return Err(format!(
                    "`{walked}` is a {}, not a table, so it has no field `{last}`",
                    other.type_str()
                ))
            }
        };
    }
    let value = parse_value(raw, cursor.get(last));
    cursor.insert(last.clone(), value);
    Ok(())
}

/// Reads an override's text as a TOML value when it is one, else as a plain string, so that
/// `200`, `true` and `["core","spear"]` need no quoting and `/var/lib/gru3` needs none either.
fn parse_value(raw: &str, replaced: Option<&Value>) -> Value {
    let plain = || Value::String(raw.to_string());
    match raw.parse::<Value>() {
        Ok(Value::String(text)) => Value::String(text),
        // No field is a date, so `2024-01-01` is a name, not a datetime.
        Ok(Value::Datetime(_)) | Err(_) => plain(),
        // A field the file already gives as a string stays a string: an all-digit secret or
        // cluster name must not turn into an integer that then fails to deserialize.
        Ok(_) if matches!(replaced, Some(Value::String(_))) => plain(),
        Ok(value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{invalid_field, parse_message, vars, EXAMPLE, MINIMAL};
    use super::super::{ClusterConfig, IdgenMode, Role};
    use super::*;

    fn doc() -> Table {
        toml::from_str(
            "[raft]\nheartbeat_interval_ms = 50\n[auth]\nspear_secret = \"s\"\n\
             [[nodes]]\nid = 3\n[nodes.listen]\nhttp = \"127.0.0.1:1\"\n",
        )
        .expect("parses")
    }

    fn applied(name: &str, raw: &str) -> Result<Table, ConfigError> {
        let mut doc = doc();
        apply(&mut doc, &[(name.to_string(), raw.to_string())])?;
        Ok(doc)
    }

    fn get<'a>(doc: &'a Table, path: &[&str]) -> Option<&'a Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(doc.get(*first)?, |value, key| value.get(*key))
    }

    #[test]
    fn only_prefixed_variables_with_a_separator_are_overrides() {
        let env = [("GRU_LOG", "debug"), ("GRU_RAFT__X", "1"), ("PATH", "/bin")];
        let found = overrides(env.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(found, [("GRU_RAFT__X".to_string(), "1".to_string())]);
    }

    #[test]
    fn values_parse_as_toml_or_stay_plain_strings() {
        assert_eq!(parse_value("200", None), Value::Integer(200));
        assert_eq!(parse_value("true", None), Value::Boolean(true));
        assert_eq!(
            parse_value("\"quoted\"", None),
            Value::String("quoted".into())
        );
        assert_eq!(
            parse_value("[\"core\",\"spear\"]", None),
            Value::Array(vec![
                Value::String("core".into()),
                Value::String("spear".into())
            ])
        );
        for plain in ["/var/lib/gru3", "0.0.0.0:8103", "2024-01-01", "a b"] {
            assert_eq!(parse_value(plain, None), Value::String(plain.into()));
        }
        let secret = Value::String("old".into());
        assert_eq!(
            parse_value("1234567890123456", Some(&secret)),
            Value::String("1234567890123456".into())
        );
    }

    #[test]
    fn sections_and_nested_node_fields_are_created_or_replaced() {
        let doc = applied("GRU_SPEAR__LEASE_TTL_MS", "4000").expect("applies");
        assert_eq!(
            get(&doc, &["spear", "lease_ttl_ms"]),
            Some(&Value::Integer(4000))
        );
        let doc = applied("GRU_NODES__3__LISTEN__HTTP", "0.0.0.0:8103").expect("applies");
        let node = &doc["nodes"][0];
        assert_eq!(node["listen"]["http"].as_str(), Some("0.0.0.0:8103"));
    }

    #[test]
    fn bad_paths_are_refused_naming_the_variable() {
        let cases = [
            ("GRU_NODES__9__DATA_DIR", "no node with id 9"),
            ("GRU_NODES__x__DATA_DIR", "not a node id"),
            ("GRU_NODES__3", "GRU_NODES__<id>__<FIELD>"),
            ("GRU_RAFT__HEARTBEAT_INTERVAL_MS__X", "not a table"),
            ("GRU_RAFT____X", "empty path segment"),
        ];
        for (name, needle) in cases {
            let err = applied(name, "1").expect_err(name).to_string();
            assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn overrides_set_scalars_and_nodes_by_id() {
        let env = vars(&[
            ("GRU_RAFT__HEARTBEAT_INTERVAL_MS", "60"),
            ("GRU_IDGEN__MODE", "unique"),
            ("GRU_AUTH__SPEAR_SECRET", "from-the-environment-0001"),
            ("GRU_NODES__3__DATA_DIR", "/var/lib/gru3"),
            ("GRU_NODES__3__LISTEN__HTTP", "0.0.0.0:8203"),
            ("GRU_NODES__6__ROLES", "[\"ticket\",\"stat\"]"),
            ("GRU_LOG", "debug"),
        ]);
        let config = ClusterConfig::from_toml_str(EXAMPLE, env).expect("valid");
        assert_eq!(config.raft.heartbeat_interval_ms, 60);
        assert_eq!(config.idgen.mode, IdgenMode::Unique);
        assert_eq!(config.auth.spear_secret, "from-the-environment-0001");
        let node = config.node(3).expect("node 3");
        assert_eq!(node.data_dir, std::path::Path::new("/var/lib/gru3"));
        assert_eq!(node.listen.http.to_string(), "0.0.0.0:8203");
        assert_eq!(
            config.node(6).expect("node 6").roles,
            [Role::Ticket, Role::Stat]
        );
    }

    #[test]
    fn overrides_can_supply_what_the_file_leaves_out() {
        let without_auth = &MINIMAL[MINIMAL.find("[[nodes]]").expect("has nodes")..];
        let env = vars(&[
            ("GRU_AUTH__BUSINESS_SECRET", "business-from-env-0001"),
            ("GRU_AUTH__SPEAR_SECRET", "spear-from-env-000001"),
        ]);
        let config = ClusterConfig::from_toml_str(without_auth, env).expect("valid");
        assert_eq!(config.auth.business_secret, "business-from-env-0001");
    }

    #[test]
    fn an_unknown_node_id_is_refused_naming_the_variable() {
        let env = vars(&[("GRU_NODES__42__DATA_DIR", "/x")]);
        let err = ClusterConfig::from_toml_str(EXAMPLE, env).expect_err("refused");
        assert_eq!(invalid_field(err), "GRU_NODES__42__DATA_DIR");
    }

    #[test]
    fn an_unknown_field_from_an_override_says_so() {
        let env = vars(&[("GRU_RAFT__HEARTBEAT_MS", "200")]);
        let message = parse_message(ClusterConfig::from_toml_str(EXAMPLE, env));
        assert!(
            message.contains("environment overrides GRU_RAFT__HEARTBEAT_MS")
                && message.contains("heartbeat_ms"),
            "{message}"
        );
        // A fault that is the file's own still points at its line, overrides or not.
        let env = vars(&[("GRU_RAFT__RPC_TIMEOUT_MS", "100")]);
        let typo = MINIMAL.replace("data_dir", "datadir");
        let message = parse_message(ClusterConfig::from_toml_str(&typo, env));
        assert!(message.contains("line 8"), "{message}");
    }

    #[test]
    fn overridden_values_are_validated() {
        let env = vars(&[("GRU_RAFT__HEARTBEAT_INTERVAL_MS", "5000")]);
        let err = ClusterConfig::from_toml_str(EXAMPLE, env).expect_err("refused");
        assert_eq!(invalid_field(err), "raft.heartbeat_interval_ms");
    }
}
