//! What the spear's connection handlers share: its services and the limits of `[spear]`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::conn::ConnLimits;
use super::links::Links;
use super::{Closer, ConnId, Deadlines};
use crate::config::SpearSection;
use crate::services::history::Sequencer;
use crate::services::publish::{ContentLimit, Publisher};
use crate::services::spear::roster::Roster;
use crate::services::spear::verifier::Verifier;
use crate::services::spear::{Drain, SpearCounters};
use crate::services::stat::Presence;

/// The client-facing settings of a spear, from `[spear]`.
#[derive(Debug, Clone, Copy)]
pub struct SpearLimits {
    /// Rate limits per connection.
    pub conn: ConnLimits,
    /// Most groups per connection.
    pub max_groups: usize,
    /// Largest `content` accepted.
    pub max_content: ContentLimit,
    /// Time to authenticate after connecting.
    pub auth_timeout: Duration,
}

impl SpearLimits {
    /// The limits of `spear`.
    pub fn new(spear: &SpearSection) -> Self {
        Self {
            conn: ConnLimits {
                msgs_per_sec: NonZeroU32::new(spear.max_msgs_per_sec).unwrap_or(NonZeroU32::MIN),
                requests_per_sec: NonZeroU32::new(spear.max_requests_per_sec)
                    .unwrap_or(NonZeroU32::MIN),
            },
            max_groups: spear.max_groups_per_connection,
            max_content: ContentLimit::of(spear),
            auth_timeout: Duration::from_millis(spear.auth_timeout_ms),
        }
    }
}

/// What the spear's handlers share.
pub struct SpearContext {
    /// Token checks.
    pub verifier: Verifier,
    /// Ids, history, relay and local delivery of what clients send.
    pub publisher: Arc<Publisher>,
    /// Each channel's delivery order here, and its history.
    pub sequencer: Arc<Sequencer>,
    /// Who is connected here; the relay's subscriptions and presence follow it.
    pub roster: Arc<Roster<ConnId>>,
    /// Where `online` reads presence.
    pub presence: Presence,
    /// Per-connection limits.
    pub limits: SpearLimits,
    /// Ends connections.
    pub closer: Arc<Closer>,
    /// Authentication deadlines and token expiries.
    pub deadlines: Deadlines,
    /// Open connections (gossiped as this spear's load) and messages in and out.
    pub counters: Arc<SpearCounters>,
    /// Whether the spear is draining (`gru drain`): it takes no new connections then.
    pub drain: Arc<Drain>,
    /// This spear's connections, and the channels each is live on.
    pub links: Links,
}
