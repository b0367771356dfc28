//! The server API's idempotency: a request sent again with the same `Idempotency-Key` (by the
//! same API key, within the window) gets the first answer back and delivers nothing twice.
//!
//! A key is *claimed* before the request runs (so two concurrent retries cannot both run it),
//! then holds the answer once it is known. In Redis the claim is one script, so every spear sees
//! the same keys; with the local relay (one spear) they are kept in memory. A record stores a
//! fingerprint of the request: the same key with another request is refused, not answered with
//! the first request's answer.
//!
//! What one API key may keep is bounded, in keys and in bytes ([`ReplayBudget`]), in both
//! places: a claim past the budget is refused ([`Claim::Full`]) rather than an older answer
//! forgotten early, which would let its retry deliver a second time. In Redis each API key has
//! an index of its records (a sorted set by expiry), their sizes and their total, all under the
//! key's hash tag, pruned by the claim script as records expire.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::clock::unix_ms;
use crate::net::redis::{RedisLink, Script};
use crate::services::relay::cluster_in_redis;

/// KEYS: the record, the caller's index (zset member → expiry ms), sizes (hash member →
/// bytes), total bytes. ARGV: the pending record, how long the claim lasts (ms), now (ms),
/// the member, most keys, most bytes. Prunes what expired (a bounded number per call), then
/// answers the record already there, or `"full"` past the budget, or claims (nil).
const CLAIM: &str = r"
local now = tonumber(ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 256)
for _, m in ipairs(gone) do
  local size = tonumber(redis.call('HGET', KEYS[3], m) or '0')
  redis.call('HDEL', KEYS[3], m)
  redis.call('ZREM', KEYS[2], m)
  redis.call('DECRBY', KEYS[4], size)
end
local found = redis.call('GET', KEYS[1])
if found then return found end
local keys = redis.call('ZCARD', KEYS[2])
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
if keys >= tonumber(ARGV[5]) or bytes >= tonumber(ARGV[6]) then return 'full' end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
local size = string.len(ARGV[1]) + string.len(ARGV[4])
redis.call('HSET', KEYS[3], ARGV[4], size)
redis.call('INCRBY', KEYS[4], size)
for i = 2, 4 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return false
";

/// KEYS as [`CLAIM`]'s. ARGV: the record, its time to live (ms), now (ms), the member. Stores the
/// answer and accounts for its size; the index outlives its newest record.
const FINISH: &str = r"
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + ttl, ARGV[4])
local size = string.len(ARGV[1]) + string.len(ARGV[4])
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or '0')
redis.call('HSET', KEYS[3], ARGV[4], size)
redis.call('INCRBY', KEYS[4], size - old)
for i = 2, 4 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// KEYS as [`CLAIM`]'s. ARGV: the member. Forgets a record and its accounting.
const RELEASE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local size = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DECRBY', KEYS[4], size)
return 1
";

/// What a request with an idempotency key finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: the request runs, then [`Replays::finish`] or [`Replays::release`].
    Fresh,
    /// The same request ran before: its answer.
    Done(Replayed),
    /// The same request is running right now.
    InProgress,
    /// The key was used for another request.
    Mismatch,
    /// The API key keeps as many answers (or bytes of them) as its budget allows: a new key
    /// is refused until older ones expire.
    Full,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// Its HTTP status.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The request's fingerprint.
    f: String,
    /// The answer, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<Replayed>,
}

/// Why the keys could not be read or written (the request is then refused: running it could
/// deliver twice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// Redis cannot be reached.
    #[error("idempotency keys unavailable: {0}")]
    Unavailable(String),
}

/// What one API key may keep (`server_api.idempotency_max_keys`, `…_max_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBudget {
    /// Most records (claims and answers).
    pub max_keys: u64,
    /// Most bytes of records (their keys and what they hold).
    pub max_bytes: u64,
}

/// How long a claim lasts before its answer is stored (then the answer lasts the window): a
/// spear that dies mid-request leaves a key refused with 409 for this long, not a whole window.
const PENDING: Duration = Duration::from_secs(60);

enum KeyStore {
    Redis {
        link: Arc<RedisLink>,
        scripts: [Script; 3],
    },
    Memory(Mutex<MemoryKeys>),
}

/// One record in memory.
struct Entry {
    /// When it is forgotten (`order` is only roughly in this order: a claim lasts less than
    /// an answer).
    until: Instant,
    /// Which of the record's name's entries in `order` is this one.
    generation: u64,
    caller: String,
    bytes: u64,
    record: Record,
}

/// A caller's records: how many, how many bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    keys: u64,
    bytes: u64,
}

/// The keys of one process, forgotten as they expire.
#[derive(Default)]
struct MemoryKeys {
    records: HashMap<String, Entry>,
    /// Names in the order they were stored (so by expiry, but for a claim's shorter life); an
    /// entry whose generation is not its record's any more (released, or stored again) is
    /// skipped.
    order: VecDeque<(Instant, String, u64)>,
    generation: u64,
    usage: HashMap<String, Usage>,
}

impl MemoryKeys {
    /// Forgets what expired by `now`; drops stale entries of `order` when they outnumber the
    /// records, so releasing a key costs nothing and `order` stays proportionate.
    fn prune(&mut self, now: Instant) {
        while let Some((until, name, generation)) = self.order.front() {
            let current = self
                .records
                .get(name)
                .is_some_and(|e| e.generation == *generation);
            if current && *until > now {
                break;
            }
            if current {
                let name = name.clone();
                self.forget(&name);
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.records.len() + 1024 {
            let records = &self.records;
            self.order
                .retain(|(_, name, g)| records.get(name).is_some_and(|e| e.generation == *g));
        }
    }

    fn forget(&mut self, name: &str) {
        if let Some(entry) = self.records.remove(name) {
            let usage = self.usage.entry(entry.caller).or_default();
            usage.keys = usage.keys.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(entry.bytes);
        }
    }

    /// Keeps `record` under `name` until `until`, replacing any record there.
    fn keep(&mut self, name: &str, caller: &str, until: Instant, record: Record) {
        self.forget(name);
        self.generation += 1;
        let bytes = record_bytes(name, &record);
        let usage = self.usage.entry(caller.to_string()).or_default();
        usage.keys += 1;
        usage.bytes += bytes;
        self.order
            .push_back((until, name.to_string(), self.generation));
        let entry = Entry {
            until,
            generation: self.generation,
            caller: caller.to_string(),
            bytes,
            record,
        };
        self.records.insert(name.to_string(), entry);
    }
}

/// What a record counts against its caller's byte budget: its name and what it holds.
fn record_bytes(name: &str, record: &Record) -> u64 {
    let answer = record.a.as_ref().map_or(0, |a| a.body.len() + 8);
    (name.len() + record.f.len() + answer) as u64
}

/// Where idempotency keys are kept.
pub struct Replays {
    keys: KeyStore,
    prefix: String,
    window: Duration,
    budget: ReplayBudget,
}

impl Replays {
    /// Keys in Redis, shared by every spear of cluster `cluster_name`, kept for `window`,
    /// at most `budget` per API key.
    pub fn redis(
        link: Arc<RedisLink>,
        cluster_name: &str,
        window: Duration,
        budget: ReplayBudget,
    ) -> Self {
        Self {
            keys: KeyStore::Redis {
                link,
                scripts: [
                    Script::new(CLAIM),
                    Script::new(FINISH),
                    Script::new(RELEASE),
                ],
            },
            prefix: format!("gru:{}:idem:", cluster_in_redis(cluster_name)),
            window,
            budget,
        }
    }

    /// Keys in this process (one spear), kept for `window`, at most `budget` per API key.
    pub fn memory(window: Duration, budget: ReplayBudget) -> Self {
        Self {
            keys: KeyStore::Memory(Mutex::new(MemoryKeys::default())),
            prefix: String::new(),
            window,
            budget,
        }
    }

    /// The record of `key` sent by API key `caller` (its own namespace: `{caller}` is also
    /// the hash tag), and the caller's index, sizes and total.
    fn names(&self, caller: &str, key: &str) -> [String; 4] {
        let base = format!("{}{{{caller}}}", self.prefix);
        [
            format!("{base}:{key}"),
            format!("{base}#index"),
            format!("{base}#sizes"),
            format!("{base}#bytes"),
        ]
    }

    /// Claims `key` for the request with `fingerprint`, or says what holds it.
    pub async fn claim(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim, IdempotencyError> {
        let names = self.names(caller, key);
        let pending = Record {
            f: fingerprint.to_string(),
            a: None,
        };
        let found = match &self.keys {
            KeyStore::Redis { link, scripts } => {
                let record = encode(&pending);
                let ttl = self.window.min(PENDING).as_millis().to_string();
                let (now, most_keys, most_bytes) = (
                    unix_ms().to_string(),
                    self.budget.max_keys.to_string(),
                    self.budget.max_bytes.to_string(),
                );
                let keys: Vec<&str> = names.iter().map(String::as_str).collect();
                let args: [&[u8]; 6] = [
                    record.as_bytes(),
                    ttl.as_bytes(),
                    now.as_bytes(),
                    key.as_bytes(),
                    most_keys.as_bytes(),
                    most_bytes.as_bytes(),
                ];
                let found: Option<String> = link
                    .eval(&scripts[0], &keys, &args)
                    .await
                    .map_err(|e| IdempotencyError::Unavailable(e.to_string()))?;
                match found.as_deref() {
                    None => return Ok(Claim::Fresh),
                    Some("full") => return Ok(Claim::Full),
                    // A record this gru cannot read counts as another request's.
                    Some(text) => serde_json::from_str::<Record>(text).ok(),
                }
            }
            KeyStore::Memory(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                keys.prune(now);
                let name = &names[0];
                if keys.records.get(name).is_some_and(|e| e.until <= now) {
                    keys.forget(name);
                }
                if let Some(entry) = keys.records.get(name) {
                    Some(entry.record.clone())
                } else {
                    let usage = keys.usage.get(caller).copied().unwrap_or_default();
                    if usage.keys >= self.budget.max_keys || usage.bytes >= self.budget.max_bytes {
                        return Ok(Claim::Full);
                    }
                    keys.keep(name, caller, now + self.window.min(PENDING), pending);
                    return Ok(Claim::Fresh);
                }
            }
        };
        Ok(match found {
            Some(record) if record.f != fingerprint => Claim::Mismatch,
            None => Claim::Mismatch,
            Some(Record {
                a: Some(answer), ..
            }) => Claim::Done(answer),
            Some(Record { a: None, .. }) => Claim::InProgress,
        })
    }

    /// Stores the answer of the request that claimed `key`, for the window. It is stored even
    /// past the budget: the request ran, and a retry must not run it again.
    pub async fn finish(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &str,
        answer: Replayed,
    ) -> Result<(), IdempotencyError> {
        let names = self.names(caller, key);
        let record = Record {
            f: fingerprint.to_string(),
            a: Some(answer),
        };
        match &self.keys {
            KeyStore::Redis { link, scripts } => {
                let (record, ttl, now) = (
                    encode(&record),
                    self.window.as_millis().to_string(),
                    unix_ms().to_string(),
                );
                let keys: Vec<&str> = names.iter().map(String::as_str).collect();
                let args: [&[u8]; 4] = [
                    record.as_bytes(),
                    ttl.as_bytes(),
                    now.as_bytes(),
                    key.as_bytes(),
                ];
                link.eval::<i64>(&scripts[1], &keys, &args)
                    .await
                    .map(drop)
                    .map_err(|e| IdempotencyError::Unavailable(e.to_string()))
            }
            KeyStore::Memory(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                keys.keep(&names[0], caller, Instant::now() + self.window, record);
                Ok(())
            }
        }
    }

    /// Gives `key` up (the request delivered nothing): a retry runs afresh.
    pub async fn release(&self, caller: &str, key: &str) {
        let names = self.names(caller, key);
        match &self.keys {
            KeyStore::Redis { link, scripts } => {
                let keys: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Err(e) = link
                    .eval::<i64>(&scripts[2], &keys, &[key.as_bytes()])
                    .await
                {
                    // The claim then ends by itself (a minute at most); a retry before that is
                    // told the request is in progress.
                    tracing::warn!(error = %e, "an idempotency key could not be released");
                }
            }
            KeyStore::Memory(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                keys.forget(&names[0]);
            }
        }
    }
}

fn encode(record: &Record) -> String {
    // A record of strings and numbers always encodes.
    serde_json::to_string(record).unwrap_or_default()
}

/// What a keyed request's work produced: the answer to send, and whether the message(s) reached
/// anyone (then the answer is kept for retries; otherwise the key is released so that a retry
/// runs afresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What to send.
    pub reply: Replayed,
    /// Whether anything reached anyone, or may yet.
    pub reached_someone: bool,
}

/// What a request under an idempotency key got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// It ran now: its answer.
    Ran(Replayed),
    /// It ran before: the stored answer, sent again.
    Replayed(Replayed),
}

/// Why a request under an idempotency key did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnceError<E> {
    /// The keys could not be read.
    #[error(transparent)]
    Keys(#[from] IdempotencyError),
    /// The caller was not admitted (its rate): nothing ran, the key is free again.
    #[error(transparent)]
    NotAdmitted(E),
    /// The caller keeps as many keys as its budget allows.
    #[error("this API key has as many Idempotency-Keys remembered as its budget allows")]
    Full,
    /// The same request is running right now.
    #[error("a request with this Idempotency-Key is still running")]
    InProgress,
    /// The key was used for another request.
    #[error("this Idempotency-Key was used for another request")]
    Mismatch,
}

impl Replays {
    /// Runs `work` at most once for `caller`'s `key` (a request with `fingerprint`): claims the
    /// key, admits the caller (a replay counts against its rate the same, or a replay storm of
    /// a large answer would be free), runs the work, then stores its answer when it reached
    /// someone, or releases the key when it reached nobody.
    pub async fn once<E, Fut>(
        &self,
        (caller, key, fingerprint): (&str, &str, &str),
        admit: impl Fn() -> Result<(), E>,
        work: impl FnOnce() -> Fut,
    ) -> Result<Once, OnceError<E>>
    where
        Fut: std::future::Future<Output = Answer>,
    {
        match self.claim(caller, key, fingerprint).await? {
            Claim::Fresh => {}
            Claim::Done(answer) => {
                admit().map_err(OnceError::NotAdmitted)?;
                return Ok(Once::Replayed(answer));
            }
            Claim::Full => return Err(OnceError::Full),
            Claim::InProgress => return Err(OnceError::InProgress),
            Claim::Mismatch => return Err(OnceError::Mismatch),
        }
        if let Err(e) = admit() {
            self.release(caller, key).await;
            return Err(OnceError::NotAdmitted(e));
        }
        let answer = work().await;
        if answer.reached_someone {
            if let Err(e) = self
                .finish(caller, key, fingerprint, answer.reply.clone())
                .await
            {
                // The claim stays until it expires: retries are told it is running, which is
                // safe (nothing is delivered twice).
                tracing::warn!(error = %e, key = caller, "an idempotent answer was not stored");
            }
        } else {
            self.release(caller, key).await;
        }
        Ok(Once::Ran(answer.reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: ReplayBudget = ReplayBudget {
        max_keys: 1_000_000,
        max_bytes: 1 << 30,
    };

    #[tokio::test(start_paused = true)]
    async fn a_key_is_claimed_once_answers_retries_and_ends_with_its_window() {
        let replays = Replays::memory(Duration::from_secs(120), ROOMY);
        assert_eq!(replays.claim("a", "k1", "f1").await, Ok(Claim::Fresh));
        assert_eq!(replays.claim("a", "k1", "f1").await, Ok(Claim::InProgress));
        assert_eq!(replays.claim("a", "k1", "f2").await, Ok(Claim::Mismatch));
        assert_eq!(
            replays.claim("b", "k1", "f2").await,
            Ok(Claim::Fresh),
            "each API key has its own"
        );
        let answer = Replayed {
            status: 200,
            body: "{}".into(),
        };
        replays
            .finish("a", "k1", "f1", answer.clone())
            .await
            .expect("stored");
        assert_eq!(
            replays.claim("a", "k1", "f1").await,
            Ok(Claim::Done(answer))
        );
        replays.release("b", "k1").await;
        assert_eq!(replays.claim("b", "k1", "f3").await, Ok(Claim::Fresh));
        // A claim never answered ends after a minute; an answer lasts the window.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(replays.claim("b", "k1", "f4").await, Ok(Claim::Fresh));
        assert!(matches!(
            replays.claim("a", "k1", "f1").await,
            Ok(Claim::Done(_))
        ));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(replays.claim("a", "k1", "f9").await, Ok(Claim::Fresh));
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_key_keeps_at_most_its_budget_and_others_are_unaffected() {
        let budget = ReplayBudget {
            max_keys: 10,
            max_bytes: 4096,
        };
        let replays = Replays::memory(Duration::from_secs(3600), budget);
        for i in 0..10 {
            assert_eq!(
                replays.claim("a", &i.to_string(), "f").await,
                Ok(Claim::Fresh)
            );
        }
        assert_eq!(replays.claim("a", "10", "f").await, Ok(Claim::Full));
        assert_eq!(
            replays.claim("b", "10", "f").await,
            Ok(Claim::Fresh),
            "b has its own"
        );
        // Nothing kept was forgotten to make room.
        assert_eq!(replays.claim("a", "0", "f").await, Ok(Claim::InProgress));
        // Released keys free their room at once.
        replays.release("a", "0").await;
        assert_eq!(replays.claim("a", "10", "f").await, Ok(Claim::Fresh));
        // Bytes count too: one large answer fills the budget.
        let big = Replayed {
            status: 200,
            body: "x".repeat(5000),
        };
        replays
            .finish("a", "1", "f", big)
            .await
            .expect("stored past the budget");
        replays.release("a", "2").await;
        assert_eq!(replays.claim("a", "11", "f").await, Ok(Claim::Full));
        if let KeyStore::Memory(keys) = &replays.keys {
            let keys = keys.lock().expect("keys");
            assert_eq!(keys.usage["a"].keys, 9);
            assert!(keys.usage["a"].bytes > 5000);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn releasing_and_reclaiming_keeps_the_order_proportionate() {
        let replays = Replays::memory(Duration::from_secs(3600), ROOMY);
        for i in 0..10_000 {
            let key = (i % 7).to_string();
            assert_eq!(replays.claim("a", &key, "f").await, Ok(Claim::Fresh));
            replays.release("a", &key).await;
        }
        if let KeyStore::Memory(keys) = &replays.keys {
            let keys = keys.lock().expect("keys");
            assert!(
                keys.order.len() <= 2 * keys.records.len() + 1025,
                "{}",
                keys.order.len()
            );
        }
    }
}
