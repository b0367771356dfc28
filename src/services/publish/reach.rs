//! How far one user may make this spear and the history reach in a minute.
//!
//! History is capped per channel, but which channels a user writes to is the user's choice:
//! without a bound, one token sending to ever-new user ids (or joining never-seen groups)
//! would make the history hold a channel for each, for `history.max_age_secs`. So each user
//! has, per spear, a budget of **new channels** a minute (`spear.max_new_channels_per_min`:
//! channels it sends to, or whose history its joins open, that it has not touched within the
//! minute) and of **history bytes** a minute (`spear.max_history_bytes_per_min`: what its
//! messages add). Past either a message is refused; a join still succeeds but opens no history
//! (the channel starts its history with its first message). Business servers publish under
//! their API key's own rate instead.
//!
//! What is kept is bounded too: users who touched anything within the last minute, each with
//! at most its channel budget of entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::services::channel::Channel;

/// The window both budgets are counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Calls between two sweeps of users idle for a whole window.
const SWEEP_EVERY: u64 = 1024;

/// What one user may do per spear and minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachLimits {
    /// New channels a minute.
    pub new_channels_per_min: u32,
    /// Bytes of history a minute.
    pub history_bytes_per_min: u64,
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverReach {
    /// The user sent to as many different channels within the minute as it may.
    #[error(
        "this user sent to {0} different channels within a minute (spear.max_new_channels_per_min); retry later"
    )]
    Channels(u32),
    /// The user's messages added as many bytes to the history within the minute as they may.
    #[error(
        "this user's messages added {0} bytes to the history within a minute (spear.max_history_bytes_per_min); retry later"
    )]
    Bytes(u64),
}

#[derive(Debug)]
struct User {
    /// Channels touched, with when (at most `new_channels_per_min` entries).
    channels: HashMap<Channel, Instant>,
    /// History bytes left, refilled at the budget's rate up to the budget.
    bytes_left: f64,
    refilled: Instant,
    last_seen: Instant,
}

impl User {
    fn new(now: Instant, limits: ReachLimits) -> Self {
        Self {
            channels: HashMap::new(),
            bytes_left: limits.history_bytes_per_min as f64,
            refilled: now,
            last_seen: now,
        }
    }

    /// Takes room for `channel` (free if touched within the window).
    fn touch(&mut self, channel: Channel, now: Instant, most: u32) -> bool {
        if let Some(at) = self.channels.get_mut(&channel) {
            *at = now;
            return true;
        }
        if self.channels.len() >= most as usize {
            self.channels
                .retain(|_, at| now.saturating_duration_since(*at) < WINDOW);
        }
        if self.channels.len() >= most as usize {
            return false;
        }
        self.channels.insert(channel, now);
        true
    }

    fn refill(&mut self, now: Instant, budget: u64) {
        let per_sec = budget as f64 / WINDOW.as_secs_f64();
        let gained = now.saturating_duration_since(self.refilled).as_secs_f64() * per_sec;
        self.bytes_left = (self.bytes_left + gained).min(budget as f64);
        self.refilled = now;
    }
}

#[derive(Debug, Default)]
struct Users {
    map: HashMap<u64, User>,
    calls: u64,
}

/// The budgets of this spear's users.
#[derive(Debug)]
pub struct Reach {
    limits: ReachLimits,
    users: Mutex<Users>,
}

impl Reach {
    /// Budgets of `limits`.
    pub fn new(limits: ReachLimits) -> Self {
        Self {
            limits,
            users: Mutex::default(),
        }
    }

    fn with_user<T>(&self, uid: u64, f: impl FnOnce(&mut User, Instant) -> T) -> T {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.calls += 1;
        if users.calls % SWEEP_EVERY == 0 {
            users
                .map
                .retain(|_, u| now.saturating_duration_since(u.last_seen) < WINDOW);
        }
        let limits = self.limits;
        let user = users
            .map
            .entry(uid)
            .or_insert_with(|| User::new(now, limits));
        user.last_seen = now;
        f(user, now)
    }

    /// Charges a message of `bytes` from user `uid` to `channel`, or says which budget it is
    /// over (then nothing is charged).
    pub fn send(&self, uid: u64, channel: Channel, bytes: u64) -> Result<(), OverReach> {
        let limits = self.limits;
        self.with_user(uid, |user, now| {
            user.refill(now, limits.history_bytes_per_min);
            let bytes = bytes as f64;
            if bytes > user.bytes_left {
                return Err(OverReach::Bytes(limits.history_bytes_per_min));
            }
            if !user.touch(channel, now, limits.new_channels_per_min) {
                return Err(OverReach::Channels(limits.new_channels_per_min));
            }
            user.bytes_left -= bytes;
            Ok(())
        })
    }

    /// Whether user `uid` may open `channel`'s history (a join of a channel without one),
    /// charging it as a new channel if so.
    pub fn open(&self, uid: u64, channel: Channel) -> bool {
        let most = self.limits.new_channels_per_min;
        self.with_user(uid, |user, now| user.touch(channel, now, most))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReachLimits = ReachLimits {
        new_channels_per_min: 3,
        history_bytes_per_min: 6000,
    };

    #[tokio::test(start_paused = true)]
    async fn new_channels_are_counted_per_user_and_minute() {
        let reach = Reach::new(LIMITS);
        for c in 1..=3 {
            assert_eq!(reach.send(1, Channel::User(c), 10), Ok(()));
        }
        assert_eq!(
            reach.send(1, Channel::User(4), 10),
            Err(OverReach::Channels(3))
        );
        // A channel touched within the minute is free; another user has its own budget.
        assert_eq!(reach.send(1, Channel::User(2), 10), Ok(()));
        assert_eq!(reach.send(2, Channel::User(4), 10), Ok(()));
        assert!(!reach.open(1, Channel::Group(9)), "a join counts the same");
        tokio::time::advance(WINDOW).await;
        assert!(reach.open(1, Channel::Group(9)));
        assert_eq!(reach.send(1, Channel::User(4), 10), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn history_bytes_refill_at_the_budgets_rate() {
        let reach = Reach::new(LIMITS);
        let g = Channel::Group(1);
        assert_eq!(reach.send(1, g, 5000), Ok(()));
        assert_eq!(reach.send(1, g, 2000), Err(OverReach::Bytes(6000)));
        // 100 bytes a second come back.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(reach.send(1, g, 2000), Ok(()));
        assert_eq!(reach.send(1, g, 200), Err(OverReach::Bytes(6000)));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_users_are_forgotten() {
        let reach = Reach::new(LIMITS);
        for uid in 0..100 {
            reach
                .send(uid, Channel::User(uid), 1)
                .expect("within budget");
        }
        tokio::time::advance(WINDOW).await;
        for _ in 0..SWEEP_EVERY {
            reach
                .send(1000, Channel::User(1), 1)
                .expect("within budget");
        }
        assert_eq!(reach.users.lock().expect("users").map.len(), 1);
    }
}
