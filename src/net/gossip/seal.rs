//! The sealed datagram: what authenticates one gossip datagram between members.
//!
//! ```text
//! "gru" 0x01 | sent at: u64 big-endian, Unix ms | HMAC-SHA256 (32 bytes) | chitchat's datagram
//! ```
//!
//! The HMAC covers the first twelve bytes (magic, version, time) and the payload, under a key
//! of `auth.gossip_keys`. The first key of the list seals; every listed key opens, so a key is
//! rotated by listing the new one second, then first, then dropping the old one. A datagram
//! whose time is further than [`MAX_SKEW_MS`] from the receiver's clock is refused: a recorded
//! datagram can be replayed only within that window (where chitchat's versioned state makes
//! it stale news: a receiver ignores versions it already has).

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a datagram's time may be from the receiver's clock, either way, in ms. Members'
/// clocks must agree within it (NTP does by far); it is also how long a recorded datagram can
/// be replayed.
pub const MAX_SKEW_MS: u64 = 30_000;

/// The first bytes of every sealed datagram: the format and its version.
const MAGIC: [u8; 4] = *b"gru\x01";
/// Magic and time: what precedes the tag.
const STAMP_LEN: usize = MAGIC.len() + 8;
const TAG_LEN: usize = 32;
/// Bytes a seal adds to chitchat's datagram.
const OVERHEAD: usize = STAMP_LEN + TAG_LEN;

/// Why a datagram was refused (the label of `gru_gossip_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a sealed datagram: too short, or another format (an unauthenticated chitchat).
    Malformed,
    /// No key of the list verifies it: forged, or sealed with a key this node does not list.
    BadSignature,
    /// Authentic but sent too long ago or too far ahead: a replay, or a clock out of step.
    OutsideWindow,
    /// This node lists no key (a one-node cluster): nothing is accepted.
    NoKey,
    /// Authentic, but chitchat could not decode what it carries (a member running another
    /// chitchat version). Refused after the seal, and counted with the others so that one
    /// counter holds every dropped datagram.
    Undecodable,
}

impl Refusal {
    /// Every refusal.
    pub const ALL: [Refusal; 5] = [
        Refusal::Malformed,
        Refusal::BadSignature,
        Refusal::OutsideWindow,
        Refusal::NoKey,
        Refusal::Undecodable,
    ];

    /// Its name in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::OutsideWindow => "outside_window",
            Refusal::NoKey => "no_key",
            Refusal::Undecodable => "undecodable",
        }
    }
}

/// The keys in force, swapped whole when `[auth]` is reloaded; cheap to clone (one shared
/// ring).
#[derive(Clone)]
pub struct GossipKeys {
    ring: Arc<RwLock<Arc<Vec<Hmac<Sha256>>>>>,
}

impl std::fmt::Debug for GossipKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("GossipKeys")
            .field("count", &self.current().len())
            .finish()
    }
}

fn ring(keys: &[String]) -> Arc<Vec<Hmac<Sha256>>> {
    Arc::new(
        keys.iter()
            .map(|k| {
                <Hmac<Sha256> as Mac>::new_from_slice(k.as_bytes())
                    .expect("HMAC takes a key of any length")
            })
            .collect(),
    )
}

impl GossipKeys {
    /// A ring of `keys`: the first seals, every one opens.
    pub fn new(keys: &[String]) -> Self {
        Self {
            ring: Arc::new(RwLock::new(ring(keys))),
        }
    }

    /// Puts `keys` in force for every holder of this ring, from the next datagram on.
    pub fn replace(&self, keys: &[String]) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring(keys);
    }

    /// How many keys are in force.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether no key is in force (then nothing is sealed or opened).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Vec<Hmac<Sha256>>> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `payload` sealed with the first key at `now_ms`; `None` without a key.
    pub fn seal(&self, payload: &[u8], now_ms: u64) -> Option<Vec<u8>> {
        let ring = self.current();
        let key = ring.first()?;
        let mut out = Vec::with_capacity(OVERHEAD + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&now_ms.to_be_bytes());
        let mut mac = key.clone();
        mac.update(&out);
        mac.update(payload);
        out.extend_from_slice(&mac.finalize().into_bytes());
        out.extend_from_slice(payload);
        Some(out)
    }

    /// The payload of `datagram` if a key in force verifies it and its time is within
    /// [`MAX_SKEW_MS`] of `now_ms`.
    pub fn open<'a>(&self, datagram: &'a [u8], now_ms: u64) -> Result<&'a [u8], Refusal> {
        if datagram.len() < OVERHEAD || datagram[..MAGIC.len()] != MAGIC {
            return Err(Refusal::Malformed);
        }
        let (stamp, rest) = datagram.split_at(STAMP_LEN);
        let (tag, payload) = rest.split_at(TAG_LEN);
        let ring = self.current();
        if ring.is_empty() {
            return Err(Refusal::NoKey);
        }
        // Each key is tried whole (constant-time comparison); a ring holds one or two keys.
        let authentic = ring.iter().any(|key| {
            let mut mac = key.clone();
            mac.update(stamp);
            mac.update(payload);
            mac.verify_slice(tag).is_ok()
        });
        if !authentic {
            return Err(Refusal::BadSignature);
        }
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&stamp[MAGIC.len()..]);
        if u64::from_be_bytes(sent).abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Refusal::OutsideWindow);
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn keys(list: &[&str]) -> GossipKeys {
        GossipKeys::new(&list.iter().map(|k| k.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_sealed_datagram_opens_to_its_payload() {
        let ring = keys(&["key-a-0000000000000000000000000001"]);
        let sealed = ring.seal(b"chitchat bytes", NOW).expect("a key seals");
        assert_eq!(sealed.len(), OVERHEAD + b"chitchat bytes".len());
        assert_eq!(ring.open(&sealed, NOW), Ok(&b"chitchat bytes"[..]));
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        let ring = keys(&["key-a-0000000000000000000000000001"]);
        let stranger = keys(&["key-b-0000000000000000000000000002"]);
        let forged = stranger.seal(b"payload", NOW).expect("sealed");
        assert_eq!(ring.open(&forged, NOW), Err(Refusal::BadSignature));
        let sealed = ring.seal(b"payload", NOW).expect("sealed");
        for at in [0, 5, 13, sealed.len() - 1] {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            assert!(ring.open(&changed, NOW).is_err(), "byte {at} changed");
        }
        // The time is covered too: a replay cannot be given a fresh one.
        let mut restamped = sealed.clone();
        restamped[4..12].copy_from_slice(&(NOW + 1).to_be_bytes());
        assert_eq!(ring.open(&restamped, NOW), Err(Refusal::BadSignature));
    }

    #[test]
    fn unsealed_and_short_datagrams_are_malformed() {
        let ring = keys(&["key-a-0000000000000000000000000001"]);
        assert_eq!(ring.open(b"", NOW), Err(Refusal::Malformed));
        assert_eq!(ring.open(&[0u8; 200], NOW), Err(Refusal::Malformed));
        let sealed = ring.seal(b"", NOW).expect("sealed");
        assert_eq!(
            ring.open(&sealed[..OVERHEAD - 1], NOW),
            Err(Refusal::Malformed)
        );
        assert_eq!(ring.open(&sealed, NOW), Ok(&b""[..]));
    }

    #[test]
    fn datagrams_outside_the_window_are_refused_either_way() {
        let ring = keys(&["key-a-0000000000000000000000000001"]);
        let sealed = ring.seal(b"payload", NOW).expect("sealed");
        assert!(ring.open(&sealed, NOW + MAX_SKEW_MS).is_ok());
        assert!(ring.open(&sealed, NOW - MAX_SKEW_MS).is_ok());
        assert_eq!(
            ring.open(&sealed, NOW + MAX_SKEW_MS + 1),
            Err(Refusal::OutsideWindow),
            "a replay after the window"
        );
        assert_eq!(
            ring.open(&sealed, NOW - MAX_SKEW_MS - 1),
            Err(Refusal::OutsideWindow),
            "a sender whose clock runs ahead"
        );
    }

    #[test]
    fn a_rotation_accepts_every_listed_key_and_seals_with_the_first() {
        let (old, new) = (
            "key-old-000000000000000000000000001",
            "key-new-000000000000000000000000002",
        );
        let before = keys(&[old]);
        let from_old = before.seal(b"p", NOW).expect("sealed");
        // Step 1, the new key listed second: both open, the old one still seals.
        let ring = keys(&[old, new]);
        assert!(ring.open(&from_old, NOW).is_ok());
        assert!(before
            .open(&ring.seal(b"p", NOW).expect("sealed"), NOW)
            .is_ok());
        // Step 2, the new key first: it seals, and a node still at step 1 opens it.
        ring.replace(&[new.to_string(), old.to_string()]);
        let from_new = ring.seal(b"p", NOW).expect("sealed");
        assert!(keys(&[old, new]).open(&from_new, NOW).is_ok());
        assert!(ring.open(&from_old, NOW).is_ok(), "the old key still opens");
        assert_eq!(before.open(&from_new, NOW), Err(Refusal::BadSignature));
        // Step 3, the old key removed: what it seals is refused.
        ring.replace(&[new.to_string()]);
        assert_eq!(ring.open(&from_old, NOW), Err(Refusal::BadSignature));
        assert!(ring.open(&from_new, NOW).is_ok());
    }

    #[test]
    fn without_a_key_nothing_is_sealed_or_opened() {
        let ring = keys(&[]);
        assert!(ring.is_empty());
        assert_eq!(ring.seal(b"p", NOW), None);
        let sealed = keys(&["key-a-0000000000000000000000000001"])
            .seal(b"p", NOW)
            .expect("sealed");
        assert_eq!(ring.open(&sealed, NOW), Err(Refusal::NoKey));
        assert_eq!(format!("{ring:?}"), "GossipKeys { count: 0 }");
    }
}
