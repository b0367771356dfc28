//! The server API's idempotency: a request sent again with the same `Idempotency-Key` (by the
//! same API key, within the window) gets the first answer back and delivers nothing twice.
//!
//! A key is *claimed* before the request runs (so two concurrent retries cannot both run it),
//! then holds the answer once it is known. In Redis the claim is one script (`SET NX PX`, else
//! the stored record), so every spear sees the same keys; with the local relay (one spear)
//! they are kept in memory. A record stores a fingerprint of the request: the same key with
//! another request is refused, not answered with the first request's answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::net::redis::{RedisLink, Script};
use crate::services::relay::cluster_in_redis;

/// KEYS: the record. ARGV: the pending record, how long the claim lasts in ms. Returns nil when
/// the claim was taken, else the record already there.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
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

/// How long a claim lasts before its answer is stored (then the answer lasts the window): a
/// spear that dies mid-request leaves a key refused with 409 for this long, not a whole window.
const PENDING: Duration = Duration::from_secs(60);

enum Backend {
    Redis { link: Arc<RedisLink>, claim: Script },
    Memory(Mutex<MemoryKeys>),
}

/// Most keys one process remembers with the local relay; past it the oldest are forgotten
/// early (their retries then run again), so a flood of keys cannot exhaust memory.
const MEMORY_KEYS: usize = 100_000;

/// The keys of one process, forgotten in the order they were claimed.
#[derive(Default)]
struct MemoryKeys {
    records: HashMap<String, (Instant, Record)>,
    /// Names by claim time, oldest first (each name once: a claimed name is not claimed again
    /// until it is forgotten).
    order: std::collections::VecDeque<(Instant, String)>,
}

impl MemoryKeys {
    /// Forgets what expired by `now`, and the oldest beyond [`MEMORY_KEYS`].
    fn prune(&mut self, now: Instant) {
        while let Some((until, name)) = self.order.front() {
            if *until > now && self.order.len() < MEMORY_KEYS {
                break;
            }
            self.records.remove(name);
            self.order.pop_front();
        }
    }
}

/// Where idempotency keys are kept.
pub struct Replays {
    backend: Backend,
    prefix: String,
    window: Duration,
}

impl Replays {
    /// Keys in Redis, shared by every spear of cluster `cluster_name`, kept for `window`.
    pub fn redis(link: Arc<RedisLink>, cluster_name: &str, window: Duration) -> Self {
        Self {
            backend: Backend::Redis {
                link,
                claim: Script::new(CLAIM),
            },
            prefix: format!("gru:{}:idem:", cluster_in_redis(cluster_name)),
            window,
        }
    }

    /// Keys in this process (one spear), kept for `window`.
    pub fn memory(window: Duration) -> Self {
        Self {
            backend: Backend::Memory(Mutex::new(MemoryKeys::default())),
            prefix: String::new(),
            window,
        }
    }

    /// The record of `key` sent by API key `caller` (its own namespace: `{caller}` is also
    /// the hash tag).
    fn name(&self, caller: &str, key: &str) -> String {
        format!("{}{{{caller}}}:{key}", self.prefix)
    }

    fn window_ms(&self) -> String {
        self.window.as_millis().to_string()
    }

    /// Claims `key` for the request with `fingerprint`, or says what holds it.
    pub async fn claim(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim, IdempotencyError> {
        let name = self.name(caller, key);
        let pending = Record {
            f: fingerprint.to_string(),
            a: None,
        };
        let found = match &self.backend {
            Backend::Redis { link, claim } => {
                let record = encode(&pending);
                let window = self.window.min(PENDING).as_millis().to_string();
                let found: Option<String> = link
                    .eval(claim, &[&name], &[record.as_bytes(), window.as_bytes()])
                    .await
                    .map_err(|e| IdempotencyError::Unavailable(e.to_string()))?;
                match found {
                    None => return Ok(Claim::Fresh),
                    // A record this gru cannot read counts as another request's.
                    Some(text) => serde_json::from_str::<Record>(&text).ok(),
                }
            }
            Backend::Memory(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                keys.prune(now);
                match keys.records.get(&name) {
                    Some((_, record)) => Some(record.clone()),
                    None => {
                        let until = now + self.window;
                        keys.order.push_back((until, name.clone()));
                        keys.records.insert(name, (until, pending));
                        return Ok(Claim::Fresh);
                    }
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

    /// Stores the answer of the request that claimed `key`, for the rest of the window.
    pub async fn finish(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &str,
        answer: Replayed,
    ) -> Result<(), IdempotencyError> {
        let name = self.name(caller, key);
        let record = Record {
            f: fingerprint.to_string(),
            a: Some(answer),
        };
        match &self.backend {
            Backend::Redis { link, .. } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&name)
                    .arg(encode(&record))
                    .arg("PX")
                    .arg(self.window_ms());
                link.query::<()>(&cmd)
                    .await
                    .map_err(|e| IdempotencyError::Unavailable(e.to_string()))
            }
            Backend::Memory(keys) => {
                // The answer replaces the claim; it is forgotten with the claim, a window after
                // the request came (a record pruned meanwhile is not brought back).
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = keys.records.get_mut(&name) {
                    entry.1 = record;
                }
                Ok(())
            }
        }
    }

    /// Gives `key` up (the request delivered nothing): a retry runs afresh.
    pub async fn release(&self, caller: &str, key: &str) {
        let name = self.name(caller, key);
        match &self.backend {
            Backend::Redis { link, .. } => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(&name);
                if let Err(e) = link.query::<()>(&cmd).await {
                    // The claim then ends by itself (a minute at most); a retry before that is told the
                    // request is in progress.
                    tracing::warn!(error = %e, "an idempotency key could not be released");
                }
            }
            Backend::Memory(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                keys.records.remove(&name);
                keys.order.retain(|(_, n)| *n != name);
            }
        }
    }
}

fn encode(record: &Record) -> String {
    // A record of strings and numbers always encodes.
    serde_json::to_string(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_claimed_once_answers_retries_and_ends_with_its_window() {
        let replays = Replays::memory(Duration::from_secs(60));
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
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(replays.claim("a", "k1", "f9").await, Ok(Claim::Fresh));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_keys_are_bounded() {
        let replays = Replays::memory(Duration::from_secs(3600));
        for i in 0..MEMORY_KEYS + 10 {
            assert_eq!(
                replays.claim("a", &i.to_string(), "f").await,
                Ok(Claim::Fresh)
            );
        }
        if let Backend::Memory(keys) = &replays.backend {
            let keys = keys.lock().expect("keys");
            assert!(keys.records.len() <= MEMORY_KEYS, "{}", keys.records.len());
            assert_eq!(keys.records.len(), keys.order.len());
        }
        assert_eq!(
            replays.claim("a", "0", "f").await,
            Ok(Claim::Fresh),
            "the oldest was forgotten"
        );
        assert_eq!(
            replays
                .claim("a", &(MEMORY_KEYS + 9).to_string(), "f")
                .await,
            Ok(Claim::InProgress),
            "the newest is kept"
        );
    }
}
