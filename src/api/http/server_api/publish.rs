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
use crate::services::publish::{Accepted, Draft, PublishError, Reached, Refused, Sender};
use crate::services::relay::Audience;

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
    if req.content.len() > limits.max_content {
        return Err(ApiError::BadRequest(format!(
            "{at}content is larger than {} bytes (spear.max_payload_bytes)",
            limits.max_content
        )));
    }
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
    let audiences = match req.to {
        To::User(Id(uid)) => vec![Audience::User(uid)],
        To::Group(Id(gid)) => vec![Audience::Group(gid)],
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
                .map(|Id(uid)| Audience::User(uid))
                .collect()
        }
    };
    let content: Arc<str> = req.content.into();
    Ok(audiences
        .into_iter()
        .map(|audience| Draft {
            audience,
            target_kind: -1,
            from: Sender::Server(name.clone()),
            content: content.clone(),
        })
        .collect())
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
    /// Publishes `groups` of drafts in order. The first failure stops the rest (they are
    /// reported as not attempted): a later message never overtakes one that failed.
    async fn run(&self, groups: Vec<Vec<Draft>>) -> Vec<Vec<Outcome>> {
        let total: usize = groups.iter().map(Vec::len).sum();
        let count = u32::try_from(total).unwrap_or(u32::MAX);
        let ids = match self.publisher.ids(count).await {
            Ok(ids) => ids,
            Err(e) => return skipped(groups, &e),
        };
        let mut ids = ids.into_iter();
        let mut stop: Option<PublishError> = None;
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let mut outcomes = Vec::with_capacity(group.len());
            for draft in group {
                let channel = draft.audience;
                let outcome = match (&stop, ids.next()) {
                    (Some(e), _) => Outcome::Skipped(channel, e.clone()),
                    (None, None) => Outcome::Skipped(channel, PublishError::NoId("no id".into())),
                    (None, Some(id)) => match self.publisher.publish_as(id, draft).await {
                        Ok(done) => Outcome::Accepted(done),
                        Err(refused) => {
                            stop = Some(refused.error.clone());
                            Outcome::Refused(channel, refused)
                        }
                    },
                };
                outcomes.push(outcome);
            }
            out.push(outcomes);
        }
        out
    }
}

/// What became of one message.
enum Outcome {
    Accepted(Accepted),
    Refused(Audience, Refused),
    /// Not tried: an earlier one failed with this.
    Skipped(Audience, PublishError),
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }

    /// It reached someone (then a retry must not send it again).
    fn delivered(&self) -> bool {
        match self {
            Outcome::Accepted(_) => true,
            // One that may be in the history may still reach everyone: a retry would be a
            // second copy.
            Outcome::Refused(_, r) => r.reached != Reached::Nobody,
            Outcome::Skipped(..) => false,
        }
    }

    fn json(&self) -> Value {
        match self {
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
            Outcome::Refused(channel, refused) => {
                let here = matches!(
                    refused.reached,
                    Reached::HereOnly | Reached::Stored { here: true, .. }
                );
                let mut v = json!({
                    "channel": channel.to_string(),
                    "error": {"code": "unavailable", "message": refused.error.to_string()},
                    "delivered_here": here,
                });
                match refused.reached {
                    Reached::Unknown => v["uncertain"] = json!(true),
                    Reached::Stored { at, .. } => {
                        v["stored"] = json!(true);
                        v["epoch"] = json!(at.epoch.to_string());
                        v["position"] = json!(at.offset);
                    }
                    Reached::Nobody | Reached::HereOnly => {}
                }
                if let Some((id, _)) = refused.issued {
                    v["id"] = json!(id);
                    v["id_str"] = json!(id.to_string());
                }
                v
            }
            Outcome::Skipped(channel, error) => json!({
                "channel": channel.to_string(),
                "error": {
                    "code": "not_attempted",
                    "message": format!("not attempted after an earlier failure: {error}"),
                },
                "delivered_here": false,
            }),
        }
    }
}

fn skipped(groups: Vec<Vec<Draft>>, error: &PublishError) -> Vec<Vec<Outcome>> {
    groups
        .into_iter()
        .map(|g| {
            g.into_iter()
                .map(|d| Outcome::Skipped(d.audience, error.clone()))
                .collect()
        })
        .collect()
}

/// `{"messages": [accepted…], "failed": [the others…]}` (no `failed` when there are none).
fn split(outcomes: &[Outcome]) -> Value {
    let (ok, failed): (Vec<&Outcome>, Vec<&Outcome>) = outcomes.iter().partition(|o| o.accepted());
    let mut v = json!({"messages": ok.iter().map(|o| o.json()).collect::<Vec<_>>()});
    if !failed.is_empty() {
        v["failed"] = failed.iter().map(|o| o.json()).collect();
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
            let delivered = outcomes.iter().any(Outcome::delivered);
            let mut answer = split(&outcomes);
            let first_failure = outcomes.iter().find(|o| !o.accepted()).map(Outcome::json);
            match first_failure {
                None => (StatusCode::OK, answer, delivered),
                Some(failure) => {
                    answer["error"] = json!({
                        "code": "unavailable",
                        "message": failure["error"]["message"],
                    });
                    (StatusCode::SERVICE_UNAVAILABLE, answer, delivered)
                }
            }
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
            let delivered = results.iter().flatten().any(Outcome::delivered);
            let accepted = results.iter().flatten().filter(|o| o.accepted()).count();
            let failed = cost - accepted;
            let answer = json!({
                "results": results.iter().map(|r| split(r)).collect::<Vec<_>>(),
                "accepted": accepted,
                "failed": failed,
            });
            (StatusCode::OK, answer, delivered)
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
