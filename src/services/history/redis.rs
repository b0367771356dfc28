//! History in Redis, for every relay that travels (Redis is always there for presence): per
//! channel a hash `…:hmeta:{u:U}` (`e`: the epoch, `p`: the last offset, `x`: when the keys'
//! time to live was last renewed, see [`renew_every`]) and a stream
//! `…:hist:{u:U}` whose entry ids are the offsets (`<offset>-0`, so a replay is one `XRANGE`)
//! and whose fields are the append time (`t`, ms) and the message (`m`). One Lua script
//! appends — epoch, offset, entry, trim and expiry at once — so two spears appending to one
//! channel get consecutive offsets and the stream never disagrees with the hash. Both keys
//! carry the channel's hash tag: one slot on a Redis Cluster. A message sent with a client
//! message id leaves a record `…:sent:{u:U}:<sender>:<id>` (same tag) for the resend window,
//! written by the same script: a resend finds it instead of appending again. With the Redis
//! relay the same script also publishes the message, positioned, on the relay's channel
//! (`SPUBLISH` on a Redis Cluster: same hash tag, same slot): one round trip per message
//! instead of two.
//!
//! A server restarted empty has no hash: the next append starts a new epoch (the message's
//! id) and deletes any stream left behind, so an old position can never be read as new.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Appended, FirstSend, HistoryError, HistoryStore, Page, Retention, SentOnce, Stored};
use crate::net::redis::{RedisError, RedisLink, Script};
use crate::services::channel::{Channel, Position};
use crate::services::relay::{cluster_in_redis, PublishRoute};

/// KEYS: hash, stream, the record of the message's client message id (when it has one; else
/// the hash again, unused). ARGV: candidate epoch, message, max messages, max age ms; the first
/// send as `fingerprint id create_time` (or empty: no client message id) and the resend window
/// ms; the relay's Redis channel (or empty: not published here), its wire head
/// (`<origin>:`), the channel's name (`g:10`) and `1` for a sharded channel (`SPUBLISH`, a Redis
/// Cluster's: in the slot of the keys, whose hash tag it shares), and how often at most the
/// keys' time to live is renewed ([`renew_every`]; their time to live is then max age plus
/// that, so that a channel lives at least max age after its last message while most appends
/// leave the time to live alone: two calls fewer). Returns `{epoch, offset}`, or `{'again',
/// record}` when the record was there (nothing is appended or published).
///
/// Published, the message carries its place as [`super::positioned`] writes it (its last
/// fields) and goes out as the relay's wire form `<origin>:<epoch>.<offset>:<message>`.
const APPEND: &str = r#"
local once = ARGV[5] ~= ''
if once then
  local first = redis.call('GET', KEYS[3])
  if first then return {'again', first} end
end
local h = redis.call('HMGET', KEYS[1], 'e', 'x')
local e = h[1]
if not e then
  redis.call('DEL', KEYS[2])
  e = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', e)
end
local p = redis.call('HINCRBY', KEYS[1], 'p', 1)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], p .. '-0', 't', now, 'm', ARGV[2])
local every = tonumber(ARGV[11])
local renewed = tonumber(h[2])
if not renewed or math.abs(now - renewed) >= every then
  redis.call('HSET', KEYS[1], 'x', now)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + every)
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) + every)
end
if once then
  redis.call('SET', KEYS[3], ARGV[5] .. ' ' .. e .. ' ' .. p, 'PX', ARGV[6])
end
if ARGV[7] ~= '' then
  local body = string.sub(ARGV[2], 1, -2)
  local placed = body .. ',"channel":"' .. ARGV[9] .. '","epoch":"' .. e .. '","position":' .. p .. '}'
  local publish = 'PUBLISH'
  if ARGV[10] == '1' then publish = 'SPUBLISH' end
  redis.call(publish, ARGV[7], ARGV[8] .. e .. '.' .. p .. ':' .. placed)
end
return {e, tostring(p)}
"#;

/// KEYS: hash, stream. ARGV: candidate epoch, max age ms. Returns `{epoch, head}`.
const OPEN: &str = r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  redis.call('DEL', KEYS[2])
  e = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', e, 'p', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {e, tonumber(redis.call('HGET', KEYS[1], 'p') or '0')}
";

/// KEYS: hash, stream. ARGV: after, count, max age ms. Returns `{epoch, head, id, message,
/// id, message, …}` as strings, epoch `"0"` when the channel has none; entries older than
/// max age are left out.
const READ: &str = r"
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return {'0', '0'} end
local head = tonumber(redis.call('HGET', KEYS[1], 'p') or '0')
local after = tonumber(ARGV[1])
local out = {e, tostring(head)}
-- XRANGE with COUNT 0 answers nil, not an empty list: asked for no message, give the head.
if after >= head or tonumber(ARGV[2]) < 1 then return out end
local t = redis.call('TIME')
local oldest = t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[3])
local found = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', ARGV[2])
for _, entry in ipairs(found) do
  local f = entry[2]
  if tonumber(f[2]) >= oldest then
    table.insert(out, entry[1])
    table.insert(out, f[4])
  end
end
return out
";

/// Channels' messages in Redis.
pub struct RedisStore {
    link: Arc<RedisLink>,
    prefix: String,
    retention: Retention,
    append: Script,
    open: Script,
    read: Script,
}

impl RedisStore {
    /// The history of cluster `cluster_name` on `link`.
    pub fn new(link: Arc<RedisLink>, cluster_name: &str, retention: Retention) -> Self {
        Self {
            link,
            prefix: format!("gru:{}", cluster_in_redis(cluster_name)),
            retention,
            append: Script::new(APPEND),
            open: Script::new(OPEN),
            read: Script::new(READ),
        }
    }

    /// The hash and the stream of `channel`.
    fn keys(&self, channel: Channel) -> (String, String) {
        (
            format!("{}:hmeta:{{{channel}}}", self.prefix),
            format!("{}:hist:{{{channel}}}", self.prefix),
        )
    }

    fn max_age_ms(&self) -> String {
        self.retention.max_age.as_millis().to_string()
    }
}

/// How often at most an append renews its channel's time to live: a sixteenth of `max_age`
/// (at least a millisecond), so that an idle channel is forgotten between `max_age` and
/// 17/16 of it after its last message.
pub fn renew_every(max_age: Duration) -> Duration {
    (max_age / 16).max(Duration::from_millis(1))
}

fn unavailable(e: RedisError) -> HistoryError {
    HistoryError::Unavailable(format!("Redis is unreachable or refused: {e}"))
}

/// An append's failure: one that may have run in Redis is [`HistoryError::Uncertain`].
fn append_failed(e: RedisError) -> HistoryError {
    if e.may_have_run() {
        HistoryError::Uncertain(format!("Redis did not confirm the append: {e}"))
    } else {
        unavailable(e)
    }
}

fn number(text: &str) -> Result<u64, HistoryError> {
    text.parse()
        .map_err(|_| HistoryError::Corrupt(format!("{text:?} is not an offset")))
}

/// A stream entry id `<offset>-0`.
fn offset(id: &str) -> Result<u64, HistoryError> {
    number(id.strip_suffix("-0").unwrap_or(id))
}

impl RedisStore {
    /// The append script, published on `route` when given.
    async fn run_append(
        &self,
        channel: Channel,
        id: u64,
        message: &str,
        once: Option<SentOnce<'_>>,
        route: Option<&PublishRoute>,
    ) -> Result<Appended, HistoryError> {
        let (hash, stream) = self.keys(channel);
        let record = once.map(|once| {
            format!(
                "{}:sent:{{{channel}}}:{}:{}",
                self.prefix,
                once.sender,
                once.client_id.as_str()
            )
        });
        let first = once.map_or_else(String::new, |once| {
            format!("{} {} {}", once.fingerprint, once.id, once.create_time)
        });
        let (epoch, max, age, window, name) = (
            id.to_string(),
            self.retention.max_messages.to_string(),
            self.max_age_ms(),
            self.retention.resend_window.as_millis().to_string(),
            channel.to_string(),
        );
        let every = renew_every(self.retention.max_age).as_millis().to_string();
        let keys = [
            hash.as_str(),
            stream.as_str(),
            record.as_deref().unwrap_or(&hash),
        ];
        let (redis_channel, head) = route.map_or(("", ""), |r| (&r.redis_channel, &r.head));
        let sharded: &[u8] = if route.is_some_and(|r| r.sharded) {
            b"1"
        } else {
            b"0"
        };
        let args: [&[u8]; 11] = [
            epoch.as_bytes(),
            message.as_bytes(),
            max.as_bytes(),
            age.as_bytes(),
            first.as_bytes(),
            window.as_bytes(),
            redis_channel.as_bytes(),
            head.as_bytes(),
            name.as_bytes(),
            sharded,
            every.as_bytes(),
        ];
        let reply: Vec<String> = self
            .link
            .eval(&self.append, &keys, &args)
            .await
            .map_err(append_failed)?;
        match reply.as_slice() {
            [again, first] if again == "again" => Ok(Appended::Again(FirstSend::decode(first)?)),
            [epoch, offset] => Ok(Appended::Stored(Position {
                epoch: number(epoch)?,
                offset: number(offset)?,
            })),
            other => Err(HistoryError::Corrupt(format!(
                "an append answered {other:?}"
            ))),
        }
    }
}

impl HistoryStore for RedisStore {
    fn append_once<'a>(
        &'a self,
        channel: Channel,
        id: u64,
        message: &'a str,
        once: Option<SentOnce<'a>>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>> {
        Box::pin(self.run_append(channel, id, message, once, None))
    }

    fn append_and_publish<'a>(
        &'a self,
        channel: Channel,
        id: u64,
        message: &'a str,
        once: Option<SentOnce<'a>>,
        route: &'a PublishRoute,
    ) -> Option<BoxFuture<'a, Result<Appended, HistoryError>>> {
        Some(Box::pin(self.run_append(
            channel,
            id,
            message,
            once,
            Some(route),
        )))
    }

    fn open(&self, channel: Channel, epoch: u64) -> BoxFuture<'_, Result<Position, HistoryError>> {
        Box::pin(async move {
            let (hash, stream) = self.keys(channel);
            let (epoch, age) = (epoch.to_string(), self.max_age_ms());
            let (epoch, offset): (String, u64) = self
                .link
                .eval(
                    &self.open,
                    &[&hash, &stream],
                    &[epoch.as_bytes(), age.as_bytes()],
                )
                .await
                .map_err(unavailable)?;
            Ok(Position {
                epoch: number(&epoch)?,
                offset,
            })
        })
    }

    fn read(
        &self,
        channel: Channel,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Page, HistoryError>> {
        Box::pin(async move {
            let (hash, stream) = self.keys(channel);
            let (after, count, age) = (after.to_string(), max.to_string(), self.max_age_ms());
            let reply: Vec<String> = self
                .link
                .eval(
                    &self.read,
                    &[&hash, &stream],
                    &[after.as_bytes(), count.as_bytes(), age.as_bytes()],
                )
                .await
                .map_err(unavailable)?;
            let mut parts = reply.into_iter();
            let (Some(epoch), Some(head)) = (parts.next(), parts.next()) else {
                return Err(HistoryError::Corrupt("a short answer".into()));
            };
            let mut page = Page {
                epoch: number(&epoch)?,
                head: number(&head)?,
                entries: Vec::new(),
            };
            while let (Some(id), Some(message)) = (parts.next(), parts.next()) {
                page.entries.push(Stored {
                    offset: offset(&id)?,
                    message,
                });
            }
            Ok(page)
        })
    }
}
