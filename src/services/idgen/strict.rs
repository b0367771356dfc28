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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::{ClockGuard, Reading};
use super::control::StrictControl;
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
    control: Arc<dyn StrictControl>,
    wall: Arc<dyn WallClock>,
    settings: StrictSettings,
    window: Mutex<Window>,
    changed: Notify,
    renew_now: Notify,
    /// Times this node opened a window (became the issuer of a new term).
    opened: AtomicU64,
}

#[derive(Default)]
struct Window {
    /// The term this window was opened in; `None` when not leading.
    term: Option<u64>,
    next: u64,
    ceiling: u64,
    lease_until: Option<Instant>,
    clock: ClockGuard,
    /// When this window was opened, Unix ms (this node's wall clock).
    opened_at_ms: u64,
}

enum Attempt {
    Issued(IdBlock),
    /// Taking the ids would run the issuer further ahead of its clock than the caller may.
    Ahead {
        ahead_ms: u64,
        limit_ms: u64,
    },
    /// The wall clock is a little behind an earlier reading: wait this long, then try again.
    ClockBehind(Duration),
    Wait,
    NotLeader,
}

impl StrictIssuer {
    /// An issuer on top of the node's control plane.
    pub fn new(control: Arc<ControlPlane>, settings: StrictSettings) -> Self {
        Self::with_parts(control, Arc::new(SystemClock), settings)
    }

    /// An issuer on any control plane and wall clock (fakes in tests).
    fn with_parts(
        control: Arc<dyn StrictControl>,
        wall: Arc<dyn WallClock>,
        settings: StrictSettings,
    ) -> Self {
        Self {
            control,
            wall,
            settings,
            window: Mutex::new(Window::default()),
            changed: Notify::new(),
            renew_now: Notify::new(),
            opened: AtomicU64::new(0),
        }
    }

    /// Since when (Unix ms) this node has been issuing, if it is.
    pub fn issuing_since_ms(&self) -> Option<u64> {
        let w = self.lock();
        w.term.map(|_| w.opened_at_ms)
    }

    /// How far ahead of this node's clock its next id is, ms, while it issues: 0 at a pace
    /// the clock keeps up with, up to the window when requests outrun it.
    pub fn ahead_ms(&self) -> Option<u64> {
        let w = self.lock();
        w.term?;
        Some(strict_ms(w.next).saturating_sub(self.wall.now_ms()))
    }

    /// Times this node became the issuer of a new term since it started.
    pub fn terms_led(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `count` consecutive ids, or why not. A burst beyond what the clock keeps up with waits
    /// for the clock, up to the window.
    pub async fn issue(&self, count: u32) -> Result<IdBlock, IdError> {
        self.issue_with(count, false).await
    }

    /// `count` consecutive ids for a caller that must leave the window to messages (the HTTP
    /// API's `GET /api/v1/ids`): refused with [`IdError::Ahead`] rather than taken when they
    /// would run the issuer more than half its window ahead of its clock.
    pub async fn issue_bounded(&self, count: u32) -> Result<IdBlock, IdError> {
        self.issue_with(count, true).await
    }

    async fn issue_with(&self, count: u32, bounded: bool) -> Result<IdBlock, IdError> {
        let deadline = Instant::now() + WAIT_FOR_WINDOW;
        let mut may_wait_for_clock = true;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_issue(count, may_wait_for_clock, bounded) {
                Attempt::Issued(block) => return Ok(block),
                Attempt::Ahead { ahead_ms, limit_ms } => {
                    return Err(IdError::Ahead(format!(
                        "these ids would run the strict issuer {ahead_ms} ms ahead of its clock; \
                         the HTTP API may take it {limit_ms} ms ahead (half of \
                         idgen.window_ms): retry shortly"
                    )))
                }
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
    fn try_issue(&self, count: u32, may_wait_for_clock: bool, bounded: bool) -> Attempt {
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
        if bounded {
            let limit_ms = self.settings.window.as_millis() as u64 / 2;
            let ahead_ms = strict_ms(end).saturating_sub(now_ms);
            if ahead_ms > limit_ms {
                return Attempt::Ahead { ahead_ms, limit_ms };
            }
        }
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
        w.opened_at_ms = now_ms;
        self.opened.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::clock::{TestClock, Ticker};
    use crate::config::NodeId;
    use crate::raft::LeaderRef;

    const START_MS: u64 = layout::EPOCH_MS + 1_000_000;
    /// How long the fake Raft group takes to confirm leadership or commit a write.
    const RAFT_LATENCY: Duration = Duration::from_millis(2);

    fn settings() -> StrictSettings {
        StrictSettings {
            window: Duration::from_secs(3),
            lease: Duration::from_millis(150),
            tick: Duration::from_millis(50),
            reserve: 160_000,
        }
    }

    /// A Raft group reduced to what the issuer sees of it.
    #[derive(Default)]
    struct FakeRaft(Mutex<Group>);

    #[derive(Default)]
    struct Group {
        term: u64,
        leading: bool,
        leader: Option<LeaderRef>,
        /// No quorum answers: leadership is not confirmed and nothing is committed.
        no_quorum: bool,
        /// Leadership is confirmed, but writes fail.
        writes_fail: bool,
        /// The committed ceiling.
        ceiling: u64,
        /// Committed raises.
        raises: u32,
    }

    impl FakeRaft {
        fn leading(term: u64, ceiling: u64) -> Arc<Self> {
            Arc::new(Self(Mutex::new(Group {
                term,
                leading: true,
                ceiling,
                ..Group::default()
            })))
        }

        fn following(term: u64, leader: NodeId) -> Arc<Self> {
            Arc::new(Self(Mutex::new(Group {
                term,
                leader: Some(LeaderRef {
                    id: leader,
                    peer: None,
                }),
                ..Group::default()
            })))
        }

        fn with<T>(&self, f: impl FnOnce(&mut Group) -> T) -> T {
            f(&mut self.0.lock().expect("fake raft lock"))
        }

        fn ceiling(&self) -> u64 {
            self.with(|g| g.ceiling)
        }

        fn raises(&self) -> u32 {
            self.with(|g| g.raises)
        }
    }

    impl StrictControl for FakeRaft {
        fn leadership(&self) -> (u64, bool) {
            self.with(|g| (g.term, g.leading))
        }

        fn leader(&self) -> Option<LeaderRef> {
            self.with(|g| g.leader.clone())
        }

        fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), ControlError>> {
            Box::pin(async move {
                tokio::time::sleep(RAFT_LATENCY).await;
                self.with(|g| match (g.leading, g.no_quorum) {
                    (false, _) => Err(ControlError::NotLeader {
                        leader: g.leader.clone(),
                    }),
                    (true, true) => Err(ControlError::NoQuorum("no heartbeat answered".into())),
                    (true, false) => Ok(()),
                })
            })
        }

        fn raise_id_ceiling(
            &self,
            ceiling: u64,
        ) -> BoxFuture<'_, Result<(u64, u64), ControlError>> {
            Box::pin(async move {
                tokio::time::sleep(RAFT_LATENCY).await;
                self.with(|g| {
                    if !g.leading {
                        return Err(ControlError::NotLeader {
                            leader: g.leader.clone(),
                        });
                    }
                    if g.no_quorum || g.writes_fail {
                        return Err(ControlError::NoQuorum("write not committed".into()));
                    }
                    g.raises += 1;
                    let previous = g.ceiling;
                    g.ceiling = g.ceiling.max(ceiling);
                    Ok((previous, g.ceiling))
                })
            })
        }
    }

    /// An issuer running on a fake Raft group and a test clock; stops when dropped.
    struct Running {
        issuer: Arc<StrictIssuer>,
        raft: Arc<FakeRaft>,
        clock: Arc<TestClock>,
        cancel: CancellationToken,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    impl Running {
        fn steps_back(&self) -> u64 {
            self.issuer.lock().clock.steps_back()
        }
    }

    fn start(raft: Arc<FakeRaft>) -> Running {
        let clock = Arc::new(TestClock::starting_at(START_MS));
        let issuer = Arc::new(StrictIssuer::with_parts(
            raft.clone(),
            clock.clone(),
            settings(),
        ));
        let cancel = CancellationToken::new();
        tokio::spawn(issuer.clone().run(cancel.clone()));
        Running {
            issuer,
            raft,
            clock,
            cancel,
        }
    }

    fn end(block: IdBlock) -> u64 {
        block.first + u64::from(block.count)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_leader_issues_increasing_ids_between_the_old_ceiling_and_its_own() {
        // An earlier leader committed a ceiling 2 s ahead of this node's clock.
        let old_ceiling = strict_floor(START_MS + 2_000);
        let r = start(FakeRaft::leading(1, old_ceiling));
        let mut next = old_ceiling;
        for i in 0..200u32 {
            let block = r.issuer.issue(1 + i % 50).await.expect("ids");
            assert!(block.first >= next, "{block:?} is not above {next}");
            next = end(block);
            assert!(next <= r.raft.ceiling(), "{block:?} reaches the ceiling");
            tokio::time::sleep(Duration::from_millis(7)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_ceiling_is_renewed_before_any_request_waits_for_it() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        let opened_with = r.raft.ceiling();
        // 30 s of steady traffic: ten windows' worth of time.
        for _ in 0..3_000 {
            let asked = Instant::now();
            let block = r.issuer.issue(100).await.expect("ids");
            assert_eq!(asked.elapsed(), Duration::ZERO, "a request waited");
            assert!(end(block) <= r.raft.ceiling());
            // Raised when half the window is spent, checked every tick.
            let ahead_ms = strict_ms(r.raft.ceiling()).saturating_sub(r.clock.now_ms());
            assert!(
                ahead_ms >= 1_500 - 60,
                "the ceiling is only {ahead_ms} ms ahead"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(r.raft.ceiling() > opened_with);
        // The ceiling follows the clock (a raise per half window), not the requests.
        let raises = r.raft.raises();
        assert!((19..=22).contains(&raises), "{raises} raises in 30 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_beyond_the_window_waits_for_the_clock_and_stays_below_the_ceiling() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        let started = Instant::now();
        let mut next = 0;
        // 20 million ids, 4,883 ms of the clock's 4,096 ids/ms; the first window holds 3 s.
        for _ in 0..2_000 {
            let block = r
                .issuer
                .issue(10_000)
                .await
                .expect("served within the wait");
            assert!(block.first >= next);
            next = end(block);
            assert!(next <= r.raft.ceiling(), "{block:?} reaches the ceiling");
            assert!(
                strict_ms(next - 1) <= r.clock.now_ms() + 3_000,
                "ids ran more than a window ahead of the clock"
            );
        }
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(4_883 - 3_000 - 10),
            "{waited:?}"
        );
        // Raised for lack of ids in steps of at least MIN_STEP_MS, which bounds the writes.
        let waited_ms = waited.as_millis() as u32;
        assert!(r.raft.raises() <= waited_ms / MIN_STEP_MS as u32 + 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_burst_is_refused_at_half_the_window_and_messages_keep_the_rest() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        let asked = Instant::now();
        let mut refused = None;
        // 1,500 ms of the clock is 6.1 M ids: the bounded caller is stopped before that.
        for _ in 0..1_000 {
            match r.issuer.issue_bounded(10_000).await {
                Ok(block) => assert!(
                    strict_ms(end(block) - 1) <= r.clock.now_ms() + 1_500,
                    "a bounded request ran more than half a window ahead"
                ),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert!(
            matches!(refused, Some(IdError::Ahead(_))),
            "refused as ahead: {refused:?}"
        );
        assert_eq!(asked.elapsed(), Duration::ZERO, "refused, never waited");
        // Messages (unbounded) still get ids at once from the other half.
        let block = r.issuer.issue(10_000).await.expect("ids for messages");
        assert_eq!(asked.elapsed(), Duration::ZERO, "no wait for messages");
        assert!(end(block) <= r.raft.ceiling());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_quorum_the_lease_lapses_and_callers_see_unavailable() {
        let r = start(FakeRaft::leading(1, 0));
        let before = r.issuer.issue(1).await.expect("the window opens");
        r.raft.with(|g| g.no_quorum = true);
        // Past the lease of the last confirmation; the ceiling is still far ahead.
        tokio::time::sleep(settings().lease + settings().tick).await;
        let asked = Instant::now();
        let err = r.issuer.issue(1).await.expect_err("no ids without a lease");
        assert!(matches!(err, IdError::Unavailable(_)), "{err:?}");
        assert!(
            asked.elapsed() >= WAIT_FOR_WINDOW,
            "callers wait for a renewal first"
        );
        // The quorum is back: ids again, above those issued before.
        r.raft.with(|g| g.no_quorum = false);
        let after = r.issuer.issue(1).await.expect("ids with a quorum");
        assert!(after.first > before.first);
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_ceiling_cannot_be_raised_ids_stop_below_it() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        r.raft.with(|g| g.writes_fail = true);
        let ceiling = r.raft.ceiling();
        let mut next = 0;
        let err = loop {
            match r.issuer.issue(1_000).await {
                Ok(block) => {
                    assert!(block.first >= next);
                    next = end(block);
                    assert!(next <= ceiling, "{block:?} reaches the ceiling {ceiling}");
                }
                Err(e) => break e,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(matches!(err, IdError::Unavailable(_)), "{err:?}");
        assert_eq!(r.raft.ceiling(), ceiling);
        // Ids ran out because the clock reached the ceiling, not sooner.
        assert!(strict_ms(next) + 25 >= strict_ms(ceiling));
        assert!(r.clock.now_ms() >= strict_ms(ceiling));
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_answers_not_leader_at_once_naming_the_leader() {
        let r = start(FakeRaft::following(4, 2));
        let asked = Instant::now();
        let err = r
            .issuer
            .issue(1)
            .await
            .expect_err("followers issue no strict ids");
        assert!(
            matches!(
                err,
                IdError::NotLeader {
                    leader: Some(LeaderRef { id: 2, .. })
                }
            ),
            "{err:?}"
        );
        assert_eq!(asked.elapsed(), Duration::ZERO);
        assert_eq!(r.raft.raises(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deposed_leader_stops_issuing_within_a_tick() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        r.raft.with(|g| {
            g.term = 2;
            g.leading = false;
            g.leader = Some(LeaderRef { id: 3, peer: None });
        });
        tokio::time::sleep(settings().tick + RAFT_LATENCY).await;
        let err = r.issuer.issue(1).await.expect_err("deposed");
        assert!(
            matches!(
                err,
                IdError::NotLeader {
                    leader: Some(LeaderRef { id: 3, .. })
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_a_new_term_ids_start_at_the_ceiling_committed_before_it() {
        let r = start(FakeRaft::leading(1, 0));
        r.issuer.issue(1).await.expect("the window opens");
        let ceiling_before = r.raft.ceiling();
        // Elected again (say after a partition healed): a new term, led by this node.
        r.raft.with(|g| g.term = 2);
        tokio::time::sleep(settings().tick + RAFT_LATENCY * 2).await;
        let block = r.issuer.issue(1).await.expect("the window reopens");
        assert!(
            block.first >= ceiling_before,
            "{block:?} below {ceiling_before}"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_small_clock_step_back_is_waited_out_on_the_timer_while_other_tasks_run() {
        let r = start(FakeRaft::leading(1, 0));
        let before = r.issuer.issue(1).await.expect("the window opens");
        let ticker = Ticker::start().await;

        r.clock.step(-3);
        let (asked, ticks_before) = (Instant::now(), ticker.count());
        let after = r.issuer.issue(1).await.expect("ids");
        // The request waited for the clock, on the timer: this one thread ran the ticker
        // meanwhile (a blocking sleep would have stopped it, and tokio's clock with it).
        assert!(asked.elapsed() >= Duration::from_millis(3));
        assert!(ticker.count() >= ticks_before + 2);
        assert!(after.first > before.first);
        assert_eq!(r.steps_back(), 0, "a step waited out is not a step back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_clock_step_back_is_not_waited_for_and_ids_keep_increasing() {
        let r = start(FakeRaft::leading(1, 0));
        let mut next = end(r.issuer.issue(10).await.expect("the window opens"));
        r.clock.step(-1_000);
        let asked = Instant::now();
        for _ in 0..20 {
            let block = r.issuer.issue(100).await.expect("ids");
            assert!(block.first >= next);
            next = end(block);
        }
        assert_eq!(asked.elapsed(), Duration::ZERO, "no wait for a large step");
        assert_eq!(r.steps_back(), 1, "one step, counted once");
    }
}
