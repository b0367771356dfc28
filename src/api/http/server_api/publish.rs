//! `POST /api/v1/publish` and `POST /api/v1/publish/batch`: messages from a business server,
//! under the same promise as a client's `msg` — answered with their ids once the history and
//! the relay took them.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::{decode, ServerApiLimits, ServerApiState};
use crate::api::http::ApiError;
use crate::config::ApiScope;
use crate::services::channel::Channel;
use crate::services::publish::{Answer, Draft, Outcome, Replayed, Sender};

/// A user or group id: a JSON number, or a string of digits (ids above 2^53 do not survive
/// JavaScript numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Id(u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id: a whole number from 0 to 2^64-1, or such a number as a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse::<u64>()
                    .map(Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// Who a message goes to.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum To {
    /// Every connection of a user.
    User(Id),
    /// Every member of a group.
    Group(Id),
    /// Each of these users (a message each).
    Users(Vec<Id>),
}

/// One message of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    to: To,
    content: String,
    /// The sender's name recipients see; the key's name by default.
    #[serde(default)]
    sender: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    messages: Vec<PublishRequest>,
}

/// Most characters of a sender name.
const MAX_SENDER: usize = 64;

impl PublishRequest {
    /// How many messages it asks for (each user of a list, repeats included): known before
    /// anything is built for them.
    fn count(&self) -> usize {
        match &self.to {
            To::User(_) | To::Group(_) => 1,
            To::Users(users) => users.len(),
        }
    }
}

/// The drafts of one message, checked; every draft shares the one content. Call it only once
/// the request's count [`fits`].
fn drafts(
    limits: &ServerApiLimits,
    default_sender: &str,
    req: PublishRequest,
    at: &str,
) -> Result<Vec<Draft>, ApiError> {
    let name = match req.sender {
        None => default_sender.to_string(),
        Some(name) => {
            let ok = (1..=MAX_SENDER).contains(&name.chars().count())
                && !name.chars().any(char::is_control);
            if !ok {
                return Err(ApiError::BadRequest(format!(
                    "{at}sender must be 1 to {MAX_SENDER} characters without control characters"
                )));
            }
            name
        }
    };
    let channels = match req.to {
        To::User(Id(uid)) => vec![Channel::User(uid)],
        To::Group(Id(gid)) => vec![Channel::Group(gid)],
        To::Users(users) => {
            if users.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "{at}to.users must name at least one user"
                )));
            }
            let mut seen = HashSet::new();
            users
                .into_iter()
                .filter(|u| seen.insert(*u))
                .map(|Id(uid)| Channel::User(uid))
                .collect()
        }
    };
    let content: Arc<str> = req.content.into();
    let Some(&channel) = channels.first() else {
        return Err(ApiError::BadRequest(format!("{at}to names nobody")));
    };
    let first = Draft::new(
        channel,
        -1,
        Sender::Server(name),
        content,
        limits.max_content,
    )
    .map_err(|e| ApiError::BadRequest(format!("{at}{e}")))?;
    Ok(channels.iter().map(|a| first.to(*a)).collect())
}

/// Checks that `count` messages fit in one request.
fn fits(limits: &ServerApiLimits, count: usize) -> Result<(), ApiError> {
    if count > limits.max_batch {
        return Err(ApiError::BadRequest(format!(
            "{count} messages in one request is more than server_api.max_batch ({}); \
             each user of to.users counts",
            limits.max_batch
        )));
    }
    Ok(())
}

/// The drafts of a `POST /api/v1/publish` body, checked as the route checks them before it
/// publishes — its count against `limits.max_batch` from what the body holds, before anything
/// is built for the recipients — with `default_sender` as the sender's name unless the body
/// gives one.
pub fn publish_drafts(
    body: &[u8],
    limits: &ServerApiLimits,
    default_sender: &str,
) -> Result<Vec<Draft>, ApiError> {
    let req = decode::<PublishRequest>(body)?;
    fits(limits, req.count())?;
    drafts(limits, default_sender, req, "")
}

/// The drafts of a `POST /api/v1/publish/batch` body, one list per message, checked the same
/// way over all its messages.
pub fn batch_drafts(
    body: &[u8],
    limits: &ServerApiLimits,
    default_sender: &str,
) -> Result<Vec<Vec<Draft>>, ApiError> {
    let req = decode::<BatchRequest>(body)?;
    if req.messages.is_empty() {
        return Err(ApiError::BadRequest("messages must not be empty".into()));
    }
    fits(limits, req.messages.iter().map(PublishRequest::count).sum())?;
    req.messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| drafts(limits, default_sender, m, &format!("messages[{i}].")))
        .collect()
}

impl ServerApiState {
    /// Publishes `groups` of drafts in order, as one batch ([`Publisher::publish_batch`]):
    /// the first failure stops the rest. The outcomes come back grouped as the drafts were.
    ///
    /// [`Publisher::publish_batch`]: crate::services::publish::Publisher::publish_batch
    async fn run(&self, groups: Vec<Vec<Draft>>) -> Vec<Vec<Outcome>> {
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let mut outcomes = self
            .publisher
            .publish_batch(groups.into_iter().flatten().collect())
            .await
            .into_iter();
        sizes
            .into_iter()
            .map(|n| outcomes.by_ref().take(n).collect())
            .collect()
    }
}

/// One outcome as the server API renders it (`docs/api.md`, "What became of a message").
fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Accepted(done) => {
            let mut v = json!({
                "id": done.id,
                "id_str": done.id.to_string(),
                "channel": done.channel.to_string(),
                "create_time": done.create_time,
            });
            if let Some(at) = done.position {
                v["epoch"] = json!(at.epoch.to_string());
                v["position"] = json!(at.offset);
            }
            v
        }
        Outcome::Refused(refused) => {
            let fate = refused.reached.fate();
            let mut v = json!({
                "channel": refused.channel.to_string(),
                "error": {"code": "unavailable", "message": refused.error.to_string()},
                "delivered_here": fate.delivered_here,
            });
            if fate.uncertain {
                v["uncertain"] = json!(true);
            }
            if let Some(at) = fate.stored {
                v["stored"] = json!(true);
                v["epoch"] = json!(at.epoch.to_string());
                v["position"] = json!(at.offset);
            }
            if let Some((id, _)) = refused.issued {
                v["id"] = json!(id);
                v["id_str"] = json!(id.to_string());
            }
            v
        }
        Outcome::NotAttempted { channel, after } => json!({
            "channel": channel.to_string(),
            "error": {
                "code": "not_attempted",
                "message": format!("not attempted after an earlier failure: {after}"),
            },
            "delivered_here": false,
        }),
    }
}

/// The answer of a request: `status` and `body`, kept for retries when anything of
/// `outcomes` reached someone.
fn answer<'a>(
    status: StatusCode,
    body: &Value,
    outcomes: impl IntoIterator<Item = &'a Outcome>,
) -> Answer {
    Answer {
        reply: Replayed {
            status: status.as_u16(),
            body: body.to_string(),
        },
        reached_someone: outcomes.into_iter().any(Outcome::reached_someone),
    }
}

/// `{"messages": [accepted…], "failed": [the others…]}` (no `failed` when there are none).
fn split(outcomes: &[Outcome]) -> Value {
    let (ok, failed): (Vec<&Outcome>, Vec<&Outcome>) = outcomes.iter().partition(|o| o.accepted());
    let mut v = json!({"messages": ok.iter().map(|o| outcome_json(o)).collect::<Vec<_>>()});
    if !failed.is_empty() {
        v["failed"] = failed.iter().map(|o| outcome_json(o)).collect();
    }
    v
}

/// `POST /api/v1/publish`: one message (to a user, a group, or each of a list of users).
/// 200 when every message was accepted; otherwise 503 with what was and was not.
pub(super) async fn single(
    State(state): State<ServerApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers, ApiScope::Publish)?;
    let body = state.body(body).await?;
    // Counted before anything is built for the recipients: a list of 20,000 users is refused
    // with what its body already holds.
    let drafts = publish_drafts(&body, &state.limits, &caller.name)?;
    let cost = drafts.len();
    let route = ("/api/v1/publish", &body[..]);
    let st = state.clone();
    state
        .once(&caller, &headers, route, cost, move || async move {
            let outcomes = st
                .run(vec![drafts])
                .await
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            let mut body = split(&outcomes);
            let first_failure = outcomes.iter().find(|o| !o.accepted()).map(outcome_json);
            let status = match first_failure {
                None => StatusCode::OK,
                Some(failure) => {
                    body["error"] = json!({
                        "code": "unavailable",
                        "message": failure["error"]["message"],
                    });
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            answer(status, &body, &outcomes)
        })
        .await
}

/// `POST /api/v1/publish/batch`: `{"messages": [message…]}`, published in order; 200 with a
/// result per message (`messages`, and `failed` for those not accepted) and the counts.
pub(super) async fn batch(
    State(state): State<ServerApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.caller(&headers, ApiScope::Publish)?;
    let body = state.body(body).await?;
    let groups = batch_drafts(&body, &state.limits, &caller.name)?;
    let cost = groups.iter().map(Vec::len).sum();
    let route = ("/api/v1/publish/batch", &body[..]);
    let st = state.clone();
    state
        .once(&caller, &headers, route, cost, move || async move {
            let results = st.run(groups).await;
            let accepted = results.iter().flatten().filter(|o| o.accepted()).count();
            let body = json!({
                "results": results.iter().map(|r| split(r)).collect::<Vec<_>>(),
                "accepted": accepted,
                "failed": cost - accepted,
            });
            answer(StatusCode::OK, &body, results.iter().flatten())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ids_decode_with_reasons() {
        let r: PublishRequest =
            serde_json::from_value(json!({"to": {"user": 5}, "content": "x"})).expect("user");
        assert!(matches!(r.to, To::User(Id(5))));
        let r: PublishRequest = serde_json::from_value(
            json!({"to": {"users": ["18446744073709551615", 2]}, "content": ""}),
        )
        .expect("users");
        assert!(matches!(r.to, To::Users(ref u) if u == &[Id(u64::MAX), Id(2)]));
        for (bad, says) in [
            (json!({"to": {"user": -1}, "content": "x"}), "an id"),
            (json!({"to": {"user": "abc"}, "content": "x"}), "an id"),
            (
                json!({"to": {"room": 1}, "content": "x"}),
                "unknown variant",
            ),
            (json!({"to": {"user": 1}}), "missing field `content`"),
            (
                json!({"to": {"user": 1}, "content": "x", "extra": 1}),
                "unknown field",
            ),
        ] {
            let e = serde_json::from_value::<PublishRequest>(bad.clone()).expect_err("refused");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}
