//! Gru's socket.io wire format (wire API §2): payloads the client sends, the result envelope,
//! and the codes. Clients send JSON strings (`JSON.stringify`) or objects; both are accepted.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::services::channel::{Channel, Position};
use crate::services::spear::verifier::Credentials;

/// Success.
pub const OK: i32 = 0;
/// System error (ids, relay, internal).
pub const SYSTEM_ERROR: i32 = 1001;
/// Logic error: the request is well-formed but not allowed (group not permitted, limits).
pub const LOGIC_ERROR: i32 = 1002;
/// Parameter error: malformed JSON, wrong types, missing fields, bad tokens.
pub const PARAM_ERROR: i32 = 1003;

/// The result envelope every reply uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    /// Whether the request succeeded.
    pub success: bool,
    /// One of the codes above.
    #[serde(rename = "errorCode")]
    pub error_code: i32,
    /// A human-readable message.
    pub msg: String,
    /// The result, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Reply {
    /// A success with `msg` and optional `data`.
    pub fn ok(msg: &str, data: Option<Value>) -> Self {
        Self {
            success: true,
            error_code: OK,
            msg: msg.to_string(),
            data,
        }
    }

    /// A failure with `code`.
    pub fn error(code: i32, msg: impl Into<String>) -> Self {
        Self {
            success: false,
            error_code: code,
            msg: msg.into(),
            data: None,
        }
    }
}

/// Decodes an event payload sent either as a JSON string or as a JSON value. Errors say what
/// is wrong in the client's terms (a field, a type), never a Rust type name.
pub fn decode<T: DeserializeOwned>(raw: Value) -> Result<T, String> {
    let value = match raw {
        Value::String(text) => {
            serde_json::from_str(&text).map_err(|e| format!("malformed JSON: {e}"))?
        }
        other => other,
    };
    if !value.is_object() {
        return Err(format!(
            "bad payload: expected a JSON object, got {}",
            kind_of(&value)
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("bad payload: {e}"))
}

/// The JSON kind of `v`, for error messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the client is told when an event carries no payload at all.
pub const NO_PAYLOAD: &str = "the event carries no payload";

/// Ids arrive as numbers or decimal strings.
fn flex_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Id;
    impl serde::de::Visitor<'_> for Id {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number or a decimal string")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(Id)
}

/// `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an object with id, name and token2")]
pub struct AuthPayload {
    /// The user id.
    #[serde(deserialize_with = "flex_id")]
    pub id: u64,
    /// The user's name.
    pub name: String,
    /// The app type; older clients send `type` or nothing.
    #[serde(rename = "appType", alias = "type", default)]
    pub app_type: Option<String>,
    /// The business token (legacy scheme only).
    #[serde(default)]
    pub token1: Option<String>,
    /// The spear token from ticket.
    #[serde(default)]
    pub token2: Option<String>,
    /// The client's last position per channel, to resume (`docs/api.md`, "Resume").
    #[serde(default)]
    pub resume: Option<Value>,
}

impl AuthPayload {
    /// The credentials in it, for the spear's verifier.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            id: self.id,
            name: &self.name,
            app_type: self.app_type.as_deref(),
            token1: self.token1.as_deref(),
            token2: self.token2.as_deref(),
        }
    }
}

/// One channel's point in `resume`: `{"epoch": "<decimal>", "position": <n>}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with epoch and position")]
struct ResumePoint {
    #[serde(deserialize_with = "flex_id")]
    epoch: u64,
    #[serde(deserialize_with = "flex_id")]
    position: u64,
}

/// The `resume` object of `auth` or of the handshake: `{"u:5": {epoch, position}, "g:10":
/// …}`, at most `max_channels` entries, every one the connection's own user or a group. A
/// channel that appears twice keeps its last point. `null` is no resume at all, as an absent
/// `resume` is.
pub fn resume_points(
    raw: Value,
    uid: u64,
    max_channels: usize,
) -> Result<std::collections::HashMap<Channel, Position>, String> {
    if raw.is_null() {
        return Ok(std::collections::HashMap::new());
    }
    let Value::Object(map) = raw else {
        return Err(format!(
            "resume must be an object of channel: {{epoch, position}}, got {}",
            kind_of(&raw)
        ));
    };
    if map.len() > max_channels {
        return Err(format!(
            "resume names {} channels; at most {max_channels} (the user and its groups)",
            map.len()
        ));
    }
    map.into_iter()
        .map(|(name, point)| {
            let channel: Channel = name
                .parse()
                .map_err(|()| format!("resume: {name:?} is not a channel (u:<id> or g:<id>)"))?;
            if matches!(channel, Channel::User(other) if other != uid) {
                return Err(format!("resume: {name:?} is another user's channel"));
            }
            // serde would also read a struct from an array (`[epoch, position]`): only the
            // documented object form is a point.
            if !point.is_object() {
                return Err(format!(
                    "resume: {name}: expected an object with epoch and position, got {}",
                    kind_of(&point)
                ));
            }
            let point: ResumePoint =
                serde_json::from_value(point).map_err(|e| format!("resume: {name}: {e}"))?;
            Ok((
                channel,
                Position {
                    epoch: point.epoch,
                    offset: point.position,
                },
            ))
        })
        .collect()
}

/// One group in `subscribe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a group object with an id")]
pub struct GroupRef {
    /// The group id.
    #[serde(deserialize_with = "flex_id")]
    pub id: u64,
    /// Its display name (not used by the server).
    #[serde(default)]
    pub name: Option<String>,
}

/// `subscribe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an object with userId and subscribeGroups")]
pub struct SubscribePayload {
    /// Must equal the authenticated user.
    #[serde(rename = "userId", deserialize_with = "flex_id")]
    pub user_id: u64,
    /// The groups to join.
    #[serde(rename = "subscribeGroups")]
    pub groups: Vec<GroupRef>,
}

/// The target of a `msg`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a target object with an id")]
pub struct Target {
    /// A user id (unicast) or group id (broadcast).
    #[serde(deserialize_with = "flex_id")]
    pub id: u64,
    /// Passed through to recipients; -1 when absent.
    #[serde(rename = "type", default)]
    pub kind: Option<i64>,
}

/// `msg`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an object with type, target and content")]
pub struct MsgPayload {
    /// 0 unicast, 1 group broadcast.
    #[serde(rename = "type")]
    pub kind: i64,
    /// Where it goes.
    pub target: Target,
    /// Any string.
    pub content: String,
    /// The client's id for the message (1 to 64 bytes): a resend with the same one is
    /// answered with the first send's ack and delivered nothing again.
    #[serde(default, rename = "clientMsgId")]
    pub client_msg_id: Option<String>,
}

/// `join` and `leave`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "an object with groups")]
pub struct GroupsPayload {
    /// Group ids.
    pub groups: Vec<u64>,
}

/// `ids` without repeats, in first-seen order.
pub fn distinct(ids: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// The group id of `online`: `"10"` or `10`, possibly as a JSON-encoded string.
pub fn online_group(raw: Value) -> Result<u64, String> {
    match raw {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| "group id must be a whole number".into()),
        Value::String(s) => {
            let s = s.trim().trim_matches('"');
            s.parse()
                .map_err(|_| format!("group id must be a whole number, got {s:?}"))
        }
        Value::Object(map) => map
            .get("groupId")
            .or_else(|| map.get("id"))
            .cloned()
            .map(online_group)
            .unwrap_or_else(|| Err("groupId is required".into())),
        _ => Err("group id must be a whole number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_points_are_checked() {
        let ok = resume_points(
            json!({"u:5": {"epoch": "9007199254740993", "position": 3}, "g:10": {"epoch": 7, "position": "0"}}),
            5,
            3,
        )
        .expect("valid");
        assert_eq!(
            ok.get(&Channel::User(5)),
            Some(&Position {
                epoch: 9_007_199_254_740_993,
                offset: 3
            })
        );
        assert_eq!(ok.get(&Channel::Group(10)).map(|p| p.offset), Some(0));
        for (bad, says) in [
            (json!([1]), "must be an object"),
            (
                json!({"u:6": {"epoch": "1", "position": 1}}),
                "another user's",
            ),
            (
                json!({"x:1": {"epoch": "1", "position": 1}}),
                "not a channel",
            ),
            (json!({"g:1": {"epoch": "a", "position": 1}}), "g:1"),
            (json!({"g:1": {"epoch": "1"}}), "position"),
            (json!({"g:1": {"epoch": "1", "position": -1}}), "g:1"),
            (json!({"g:1": ["1", 1]}), "expected an object"),
            (
                json!({"g:1": {}, "g:2": {}, "g:3": {}, "g:4": {}}),
                "at most 3",
            ),
        ] {
            let e = resume_points(bad.clone(), 5, 3).expect_err("refused");
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(resume_points(Value::Null, 5, 3).expect("null").is_empty());
    }

    #[test]
    fn payloads_decode_from_strings_and_objects() {
        let as_string = Value::String(
            r#"{"id": 123, "name": "Zhang", "appType": "web", "token2": "t"}"#.into(),
        );
        let a: AuthPayload = decode(as_string).expect("string payload");
        assert_eq!((a.id, a.app_type.as_deref()), (123, Some("web")));
        let b: AuthPayload =
            decode(json!({"id": "123", "name": "Zhang", "type": "android"})).expect("object");
        assert_eq!((b.id, b.app_type.as_deref()), (123, Some("android")));
        let m: MsgPayload =
            decode(json!({"type": 1, "target": {"id": "10", "type": 1}, "content": "hi"}))
                .expect("msg");
        assert_eq!((m.kind, m.target.id, m.target.kind), (1, 10, Some(1)));
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        assert!(decode::<AuthPayload>(Value::String("{not json".into())).is_err());
        assert!(decode::<AuthPayload>(json!({"name": "x"})).is_err());
        assert!(decode::<AuthPayload>(json!({"id": "abc", "name": "x"})).is_err());
        assert!(
            decode::<MsgPayload>(json!({"type": 0, "target": {"id": 1}, "content": 5})).is_err()
        );
        assert!(decode::<SubscribePayload>(json!({"userId": 1})).is_err());
    }

    #[test]
    fn errors_speak_of_fields_and_json_types_never_of_rust_types() {
        let cases = [
            decode::<AuthPayload>(json!({"id": "abc", "name": "x"})).map(|_| ()),
            decode::<AuthPayload>(json!({"id": [1], "name": "x"})).map(|_| ()),
            decode::<AuthPayload>(json!([1, 2])).map(|_| ()),
            decode::<AuthPayload>(Value::String("[1]".into())).map(|_| ()),
            decode::<MsgPayload>(json!({"type": 0, "target": 5, "content": "x"})).map(|_| ()),
            decode::<SubscribePayload>(json!({"userId": 1, "subscribeGroups": "10"})).map(|_| ()),
            decode::<GroupsPayload>(json!({"groups": [1, "x"]})).map(|_| ()),
        ];
        for case in cases {
            let message = case.expect_err("refused");
            for internal in [
                "Flex", "untagged", "struct", "Payload", "Target", "GroupRef",
            ] {
                assert!(!message.contains(internal), "{message}");
            }
        }
        let message = decode::<AuthPayload>(json!({"id": "abc", "name": "x"})).unwrap_err();
        assert!(
            message.contains("a whole number or a decimal string"),
            "{message}"
        );
    }

    #[test]
    fn repeated_ids_count_once() {
        assert_eq!(distinct([10, 11, 10, 12, 11]), vec![10, 11, 12]);
    }

    #[test]
    fn online_takes_a_group_id_in_any_of_its_shapes() {
        assert_eq!(online_group(json!("10")), Ok(10));
        assert_eq!(online_group(json!("\"10\"")), Ok(10));
        assert_eq!(online_group(json!(10)), Ok(10));
        assert_eq!(online_group(json!({"groupId": "10"})), Ok(10));
        assert!(online_group(json!("ten")).is_err());
        assert!(online_group(json!(null)).is_err());
    }

    #[test]
    fn the_envelope_has_gru_field_names() {
        let r = serde_json::to_value(Reply::error(PARAM_ERROR, "bad")).expect("json");
        assert_eq!(
            r,
            json!({"success": false, "errorCode": 1003, "msg": "bad"})
        );
    }
}
