//! Draining a spear (`gru drain`): it stops taking users from ticket (its gossip says so) and
//! tells its clients to reconnect through ticket, a wave at a time, so that the other spears
//! are not hit by every client at once. The socket.io edge moves the clients; this is the
//! state it follows and reports.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The longest pause between waves.
pub const MAX_DRAIN_EVERY: Duration = Duration::from_secs(60);

/// How a drain moves clients: `wave` connections every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPlan {
    /// Connections told to leave per wave.
    pub wave: NonZeroU32,
    /// Time between waves.
    pub every: Duration,
}

/// Why a drain plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainPlanError {
    /// A wave of nobody would never end.
    #[error("the wave must move at least one connection")]
    EmptyWave,
    /// Longer than [`MAX_DRAIN_EVERY`].
    #[error("the time between waves must be at most {}s", MAX_DRAIN_EVERY.as_secs())]
    TooSlow,
}

impl DrainPlan {
    /// A plan of `wave` connections every `every`, if both make sense.
    pub fn new(wave: u32, every: Duration) -> Result<Self, DrainPlanError> {
        let wave = NonZeroU32::new(wave).ok_or(DrainPlanError::EmptyWave)?;
        if every > MAX_DRAIN_EVERY {
            return Err(DrainPlanError::TooSlow);
        }
        Ok(Self { wave, every })
    }
}

/// Whether the spear takes users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    /// It takes users (the normal state).
    Serving,
    /// It takes none and moves its clients away as planned.
    Draining(DrainPlan),
}

/// The spear's drain state, shared by the gRPC edge (which changes it), the socket.io edge
/// (which moves clients and refuses new ones) and gossip (which tells ticket).
#[derive(Debug)]
pub struct Drain {
    state: watch::Sender<DrainState>,
    moved: AtomicU64,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(DrainState::Serving),
            moved: AtomicU64::new(0),
        }
    }
}

impl Drain {
    /// Starts draining as `plan` says (or changes the plan of a drain under way).
    pub fn start(&self, plan: DrainPlan) {
        let started = self.state.send_if_modified(|state| {
            let was = *state;
            *state = DrainState::Draining(plan);
            if was == DrainState::Serving {
                self.moved.store(0, Ordering::Relaxed);
            }
            was != *state
        });
        if started {
            tracing::info!(wave = plan.wave, every = ?plan.every, "draining: no new users; moving clients away in waves");
        }
    }

    /// Takes users again.
    pub fn stop(&self) {
        if self.state.send_if_modified(|state| {
            let was = *state;
            *state = DrainState::Serving;
            was != *state
        }) {
            tracing::info!("drain stopped: taking users again");
        }
    }

    /// The state now.
    pub fn state(&self) -> DrainState {
        *self.state.borrow()
    }

    /// Whether the spear is draining.
    pub fn is_draining(&self) -> bool {
        self.state() != DrainState::Serving
    }

    /// Follows the state.
    pub fn watch(&self) -> watch::Receiver<DrainState> {
        self.state.subscribe()
    }

    /// `n` connections were told to leave.
    pub fn moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
    }

    /// Connections told to leave since the drain started.
    pub fn moved_count(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_checked() {
        assert_eq!(
            DrainPlan::new(0, Duration::from_secs(1)),
            Err(DrainPlanError::EmptyWave)
        );
        assert_eq!(
            DrainPlan::new(10, Duration::from_secs(61)),
            Err(DrainPlanError::TooSlow)
        );
        assert!(DrainPlan::new(10, Duration::ZERO).is_ok());
    }

    #[test]
    fn start_and_stop_change_the_state_and_reset_the_count() {
        let drain = Drain::default();
        let mut seen = drain.watch();
        assert!(!drain.is_draining());
        let plan = DrainPlan::new(5, Duration::from_millis(100)).expect("plan");
        drain.start(plan);
        assert!(seen.has_changed().expect("open"));
        assert_eq!(*seen.borrow_and_update(), DrainState::Draining(plan));
        drain.moved(3);
        // Starting again with the same plan changes nothing and keeps the count.
        drain.start(plan);
        assert!(!seen.has_changed().expect("open"));
        assert_eq!(drain.moved_count(), 3);
        drain.stop();
        assert!(!drain.is_draining());
        drain.start(plan);
        assert_eq!(drain.moved_count(), 0, "a new drain counts afresh");
    }
}
