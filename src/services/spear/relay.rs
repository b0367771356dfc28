//! How messages reach recipients on other spears. Local recipients are served by the spear
//! itself; a relay carries messages to the other spears. This issue brings the in-process
//! relay (one node); Redis and RocketMQ relays implement the same trait.

use serde_json::Value;

/// Who a relayed message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connection of a user.
    User(u64),
    /// Every connection subscribed to a group.
    Group(u64),
}

/// A message on its way to other spears.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Who it is for.
    pub audience: Audience,
    /// The `msg` event payload.
    pub payload: Value,
}

/// The relay could not accept a message; the sender is told, nothing is dropped silently.
#[derive(Debug, Clone, thiserror::Error)]
#[error("relay unavailable: {0}")]
pub struct RelayError(pub String);

/// Carries messages between spears.
pub trait Relay: Send + Sync + 'static {
    /// Hands `envelope` to the spears that have recipients for it (not this one).
    fn publish(&self, envelope: &Envelope) -> Result<(), RelayError>;
}

/// The relay of a single-spear deployment (`relay.kind = "local"`): every recipient is local,
/// so there is nothing to carry.
#[derive(Debug, Default, Clone, Copy)]
pub struct InProcessRelay;

impl Relay for InProcessRelay {
    fn publish(&self, _envelope: &Envelope) -> Result<(), RelayError> {
        Ok(())
    }
}
