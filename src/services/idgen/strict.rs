//! Strict mode: strictly increasing ids, issued only by the Raft leader.
//!
//! The leader issues ids only
//! - below a ceiling committed through Raft (a few seconds ahead of the clock, renewed before
//!   it is reached, as TiDB PD does with its timestamp window), and
//! - while its leader lease is valid: leadership confirmed by a quorum less than
//!   `election_timeout_min - 2 heartbeats` ago. A new leader cannot be elected sooner than
//!   `election_timeout_min` after the followers last heard the old one, so the old leader has
//!   stopped issuing before a new one can start.
//!
//! A new leader first commits a ceiling of its own; the answer tells it the ceiling before it,
//! and it never issues below that. Every id the old leader issued was below its committed
//! ceiling, so ids stay strictly increasing across leader changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::{ClockGuard, Reading};
use super::layout::{self, strict_floor, strict_ms};
use super::{IdBlock, IdError};
use crate::clock::{SystemClock, WallClock};
use crate::raft::{ControlError, ControlPlane};

/// The smallest raise of the ceiling when it is raised for lack of ids rather than time.
const MIN_STEP_MS: u64 = 10;

/// How long a request waits for the window to open (new leader, renewal) before failing.
const WAIT_FOR_WINDOW: Duration = Duration::from_millis(1500);

/// Settings of the strict issuer.
#[derive(Debug, Clone, Copy)]
pub struct StrictSettings {
    /// How far ahead of the clock the committed ceiling runs.
    pub window: Duration,
    /// How long a confirmed leadership is trusted.
    pub lease: Duration,
    /// How often leadership is reconfirmed and the ceiling checked.
    pub tick: Duration,
    /// Raise the ceiling early when fewer ids than this remain below it.
    pub reserve: u64,
}

/// The leader-side strict id window.
pub struct StrictIssuer {
    control: Arc<ControlPlane>,
    wall: Arc<dyn WallClock>,
    settings: StrictSettings,
    window: Mutex<Window>,
    changed: Notify,
    renew_now: Notify,
}

#[derive(Default)]
struct Window {
    /// The term this window was opened in; `None` when not leading.
    term: Option<u64>,
    next: u64,
    ceiling: u64,
    lease_until: Option<Instant>,
    clock: ClockGuard,
}

enum Attempt {
    Issued(IdBlock),
    /// The wall clock is a little behind an earlier reading: wait this long, then try again.
    ClockBehind(Duration),
    Wait,
    NotLeader,
}

impl StrictIssuer {
    /// An issuer on top of the node's control plane.
    pub fn new(control: Arc<ControlPlane>, settings: StrictSettings) -> Self {
        Self {
            control,
            wall: Arc::new(SystemClock),
            settings,
            window: Mutex::new(Window::default()),
            changed: Notify::new(),
            renew_now: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `count` consecutive ids, or why not.
    pub async fn issue(&self, count: u32) -> Result<IdBlock, IdError> {
        let deadline = Instant::now() + WAIT_FOR_WINDOW;
        let mut may_wait_for_clock = true;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_issue(count, may_wait_for_clock) {
                Attempt::Issued(block) => return Ok(block),
                Attempt::ClockBehind(wait) => {
                    // The window lock was released when `try_issue` returned: other requests
                    // and the renewal go on while this one waits on the timer, and the runtime
                    // thread is never blocked. One wait per request; see `ClockGuard::read`.
                    may_wait_for_clock = false;
                    tokio::time::sleep(wait).await;
                }
                Attempt::NotLeader => {
                    return Err(IdError::NotLeader {
                        leader: self.control.leader(),
                    })
                }
                Attempt::Wait => {
                    self.renew_now.notify_one();
                    if Instant::now() >= deadline {
                        return Err(IdError::Unavailable(
                            "the leader's id window or lease is not open (no quorum?)".into(),
                        ));
                    }
                    // Look again at least every tick: a node that only believed it led (a
                    // restarted old leader) learns otherwise without anyone notifying it, and
                    // its callers should be redirected at once, not after the whole wait.
                    let recheck = (Instant::now() + self.settings.tick).min(deadline);
                    let _ = tokio::time::timeout_at(recheck, changed).await;
                }
            }
        }
    }

    /// One attempt under the window lock; it never waits, so the lock is never held across a
    /// wait.
    fn try_issue(&self, count: u32, may_wait_for_clock: bool) -> Attempt {
        let mut w = self.lock();
        if w.term.is_none() {
            return if self.control.leadership().1 {
                Attempt::Wait
            } else {
                Attempt::NotLeader
            };
        }
        if w.lease_until.is_none_or(|until| Instant::now() >= until) {
            return Attempt::Wait;
        }
        let now_ms = match w.clock.read(self.wall.now_ms(), may_wait_for_clock) {
            Reading::At(ms) => ms,
            Reading::Behind(wait) => return Attempt::ClockBehind(wait),
        };
        let first = w.next.max(strict_floor(now_ms));
        let end = first + u64::from(count);
        if end > w.ceiling {
            return Attempt::Wait;
        }
        w.next = end;
        Attempt::Issued(IdBlock { first, count })
    }

    /// Keeps the window open while this node leads: opens it on a new term, renews the lease
    /// every tick, raises the ceiling before it is reached. Runs until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
                () = self.renew_now.notified() => {}
            }
            if let Err(e) = self.maintain().await {
                tracing::debug!(error = %e, "strict id window not renewed");
            }
        }
    }

    async fn maintain(&self) -> Result<(), ControlError> {
        let (term, leading) = self.control.leadership();
        if !leading {
            self.close("not the leader");
            return Ok(());
        }
        let opened_term = self.lock().term;
        if opened_term != Some(term) {
            self.close("new term");
            return self.open(term).await;
        }
        self.renew_lease(term).await?;
        let (next, ceiling) = {
            let w = self.lock();
            (w.next, w.ceiling)
        };
        let now_ms = self.wall.now_ms();
        let window_ms = self.settings.window.as_millis() as u64;
        // The ceiling follows the clock, never the issue rate: ids run at most one window ahead
        // of the clock, and a rate above 4,096 ids/ms waits for the clock. Under such a rate the
        // ceiling moves in steps of at least MIN_STEP_MS, which bounds the Raft writes.
        let target = strict_floor(now_ms + window_ms);
        let half_spent = strict_ms(ceiling).saturating_sub(now_ms) < window_ms / 2;
        let starving = ceiling.saturating_sub(next) < self.settings.reserve
            && target >= ceiling + strict_floor(layout::EPOCH_MS + MIN_STEP_MS);
        if half_spent || starving {
            let (_, committed) = self.control.raise_id_ceiling(target).await?;
            let mut w = self.lock();
            if w.term == Some(term) {
                w.ceiling = w.ceiling.max(committed);
            }
            drop(w);
            self.changed.notify_waiters();
        }
        Ok(())
    }

    fn close(&self, why: &str) {
        let mut w = self.lock();
        if w.term.take().is_some() {
            w.lease_until = None;
            tracing::info!(why, "stopped issuing strict ids");
        }
        drop(w);
        self.changed.notify_waiters();
    }

    async fn renew_lease(&self, term: u64) -> Result<(), ControlError> {
        let asked = Instant::now();
        let confirmed =
            tokio::time::timeout(self.settings.lease, self.control.confirm_leadership()).await;
        match confirmed {
            Ok(Ok(())) => {
                let mut w = self.lock();
                if w.term == Some(term) || w.term.is_none() {
                    w.lease_until = Some(asked + self.settings.lease);
                }
                drop(w);
                self.changed.notify_waiters();
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ControlError::NoQuorum(
                "leadership not confirmed in time".into(),
            )),
        }
    }

    async fn open(&self, term: u64) -> Result<(), ControlError> {
        self.renew_lease(term).await?;
        let now_ms = self.wall.now_ms();
        let target = strict_floor(now_ms + self.settings.window.as_millis() as u64);
        let (previous, ceiling) = self.control.raise_id_ceiling(target).await?;
        if self.control.leadership() != (term, true) {
            return Ok(());
        }
        let mut w = self.lock();
        w.term = Some(term);
        w.next = previous.max(strict_floor(now_ms));
        w.ceiling = ceiling;
        tracing::info!(
            term,
            from = w.next,
            previous_ceiling = previous,
            ceiling,
            "issuing strict ids"
        );
        drop(w);
        self.changed.notify_waiters();
        Ok(())
    }
}
