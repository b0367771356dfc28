//! A message as recipients get it (event `msg`, Gru's wire API §2), as history keeps it and as
//! the relay carries it: one format whoever sent it.

use std::sync::Arc;

use serde::Serialize;

use crate::services::channel::Channel;

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A user, from a socket.io connection.
    User(u64),
    /// A business server through the server API, under this name (its key's, or one it gave).
    Server(String),
}

impl Sender {
    /// Its key among senders (client message ids are per sender): `u<uid>` or `s<name>`.
    pub fn key(&self) -> String {
        match self {
            Sender::User(uid) => format!("u{uid}"),
            Sender::Server(name) => format!("s{name}"),
        }
    }
}

/// What recipients get as event `msg`.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The message id from idgen.
    pub id: u64,
    /// Server time of acceptance, Unix ms.
    #[serde(rename = "createTime")]
    pub create_time: u64,
    /// The sending user; 0 when a server sent it (then `sender` says who).
    #[serde(rename = "fromId")]
    pub from_id: u64,
    /// 0 unicast, 1 group.
    #[serde(rename = "msgType")]
    pub msg_type: i64,
    /// The target, its id as a string as Gru sent it.
    pub target: Target,
    /// The content, shared by every recipient's copy of one request.
    pub content: Arc<str>,
    /// Always 0 (no expiry).
    #[serde(rename = "expireTime")]
    pub expire_time: u64,
    /// Present only on what a business server published: `{"type": "server", "name": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<ServerSender>,
}

/// The target inside [`Message`].
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The id, as a string.
    pub id: String,
    /// The client's target type, or -1.
    #[serde(rename = "type")]
    pub kind: i64,
}

/// The `sender` of a message a business server published.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSender {
    /// Always `"server"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The name it was published under.
    pub name: String,
}

impl Message {
    /// Message `id` to `channel` from `from`, accepted at `create_time`; `target_kind` is the
    /// target type a client gave (Gru echoes it), or -1.
    pub fn new(
        id: u64,
        create_time: u64,
        channel: Channel,
        target_kind: i64,
        from: Sender,
        content: Arc<str>,
    ) -> Self {
        let (msg_type, target_id) = match channel {
            Channel::User(uid) => (0, uid),
            Channel::Group(gid) => (1, gid),
        };
        let (from_id, sender) = match from {
            Sender::User(uid) => (uid, None),
            Sender::Server(name) => (
                0,
                Some(ServerSender {
                    kind: "server",
                    name,
                }),
            ),
        };
        Self {
            id,
            create_time,
            from_id,
            msg_type,
            target: Target {
                id: target_id.to_string(),
                kind: target_kind,
            },
            content,
            expire_time: 0,
            sender,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_message_has_grus_fields_and_a_server_message_says_who() {
        let user = Message::new(7, 1000, Channel::Group(10), 2, Sender::User(5), "hi".into());
        assert_eq!(
            serde_json::to_value(&user).expect("encodes"),
            json!({"id": 7, "createTime": 1000, "fromId": 5, "msgType": 1,
                   "target": {"id": "10", "type": 2}, "content": "hi", "expireTime": 0})
        );
        let server = Message::new(
            8,
            1001,
            Channel::User(5),
            -1,
            Sender::Server("billing".into()),
            "paid".into(),
        );
        assert_eq!(
            serde_json::to_value(&server).expect("encodes"),
            json!({"id": 8, "createTime": 1001, "fromId": 0, "msgType": 0,
                   "target": {"id": "5", "type": -1}, "content": "paid", "expireTime": 0,
                   "sender": {"type": "server", "name": "billing"}})
        );
    }
}
