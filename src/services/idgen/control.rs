//! What the strict issuer needs from the Raft group, as a narrow trait: who leads, a quorum's
//! confirmation, and the committed ceiling. [`ControlPlane`] is the real one; the issuer's unit
//! tests use a fake instead of a Raft group.

use futures_util::future::BoxFuture;

use crate::raft::{ControlError, ControlPlane, LeaderRef};

/// The control-plane operations behind strict ids.
pub(crate) trait StrictControl: Send + Sync {
    /// The current term and whether this node leads in it.
    fn leadership(&self) -> (u64, bool);

    /// The leader as far as this node knows, for redirects.
    fn leader(&self) -> Option<LeaderRef>;

    /// Confirms with a quorum that this node still leads.
    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), ControlError>>;

    /// Commits a ceiling of at least `ceiling` (a ceiling never goes down); returns the committed
    /// ceiling before and after.
    fn raise_id_ceiling(&self, ceiling: u64) -> BoxFuture<'_, Result<(u64, u64), ControlError>>;
}

impl StrictControl for ControlPlane {
    fn leadership(&self) -> (u64, bool) {
        ControlPlane::leadership(self)
    }

    fn leader(&self) -> Option<LeaderRef> {
        ControlPlane::leader(self)
    }

    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(ControlPlane::confirm_leadership(self))
    }

    fn raise_id_ceiling(&self, ceiling: u64) -> BoxFuture<'_, Result<(u64, u64), ControlError>> {
        Box::pin(ControlPlane::raise_id_ceiling(self, ceiling))
    }
}
