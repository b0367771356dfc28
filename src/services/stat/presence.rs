//! A spear's presence in Redis: it follows the roster's changes, gathers them for
//! `stat.flush_ms` and writes the current values in one pipeline (absolute values, so a write
//! can be repeated and a lost one is repaired by the next rebuild). A heartbeat key with a TTL
//! says the spear is alive; readers ignore spears whose key expired, and the other spears
//! remove a dead spear's entries through its own index (`{s:SID}:users` / `:groups`), never by
//! scanning the keyspace. When the heartbeat finds its key gone (Redis restarted, or it was
//! away longer than the TTL) or its counts drifted, the spear rewrites everything it holds.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::keys::Keys;
use crate::config::{NodeId, StatSection};
use crate::net::redis::{Batch, RedisError, RedisLink};
use crate::services::spear::roster::{Change, ChangeSink, RosterView};

/// What changed since the last flush.
#[derive(Default)]
struct Dirty {
    users: BTreeSet<u64>,
    members: BTreeSet<(u64, u64)>,
    groups: BTreeSet<u64>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.members.is_empty() && self.groups.is_empty()
    }
}

/// The roster's side of presence: marks what changed and wakes the writer.
#[derive(Default)]
pub struct PresenceMarks {
    dirty: Mutex<Dirty>,
    wake: Notify,
}

impl ChangeSink for PresenceMarks {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        if let Ok(mut d) = self.dirty.lock() {
            match change {
                Change::UserOnline(uid)
                | Change::UserConnections(uid)
                | Change::UserOffline(uid) => {
                    d.users.insert(uid);
                }
                Change::GroupOpened(gid) | Change::GroupClosed(gid) => {
                    d.groups.insert(gid);
                }
                Change::Member { gid, uid, .. } => {
                    d.members.insert((gid, uid));
                    d.groups.insert(gid);
                }
            }
        }
        self.wake.notify_one();
        None
    }
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// The key was ours and the counts agree.
    Fine,
    /// The heartbeat key was not ours: Redis lost it, or this is a new run.
    Missing,
    /// The index disagrees with the roster.
    Drifted,
}

/// Writes one spear's presence.
pub struct PresenceWriter {
    link: Arc<RedisLink>,
    keys: Keys,
    me: NodeId,
    run_id: String,
    roster: Arc<dyn RosterView>,
    marks: Arc<PresenceMarks>,
    settings: StatSection,
}

impl PresenceWriter {
    /// A writer for spear `me`, reading `roster`, woken by `marks` (which the roster feeds).
    pub fn new(
        link: Arc<RedisLink>,
        keys: Keys,
        me: NodeId,
        roster: Arc<dyn RosterView>,
        marks: Arc<PresenceMarks>,
        settings: StatSection,
    ) -> Self {
        Self {
            link,
            keys,
            me,
            run_id: format!("{me}-{}-{}", std::process::id(), crate::clock::unix_ms()),
            roster,
            marks,
            settings,
        }
    }

    /// Flushes changes and beats the heartbeat until `cancel`; then removes this spear's
    /// presence (a graceful stop leaves nothing to expire).
    pub async fn run(self, cancel: CancellationToken) {
        let flush_every = Duration::from_millis(self.settings.flush_ms);
        let beat_every = Duration::from_millis(self.settings.heartbeat_ms);
        let mut beat = tokio::time::interval(beat_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rebuild = true;
        // Counts that disagree once may be a change racing the check; twice is drift.
        let mut drifted_before = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.marks.wake.notified() => {
                    // Gather what else changes within the flush interval into the same write.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(flush_every) => {}
                    }
                    if !rebuild {
                        rebuild = self.flush().await.is_err();
                    }
                }
                _ = beat.tick() => {
                    let beat = self.heartbeat().await;
                    let drifted = matches!(beat, Ok(Beat::Drifted));
                    match beat {
                        Ok(Beat::Missing) => {
                            tracing::info!("presence missing in Redis (first start, Redis restarted, or heartbeat expired): rebuilding");
                            rebuild = true;
                        }
                        Ok(Beat::Drifted) if drifted_before => {
                            tracing::info!("presence in Redis drifted from this spear's roster: rebuilding");
                            rebuild = true;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "presence heartbeat failed");
                            rebuild = true;
                        }
                    }
                    drifted_before = drifted;
                    if rebuild {
                        rebuild = self.rebuild().await.is_err();
                    } else {
                        self.sweep_dead().await;
                    }
                }
            }
        }
        match self.remove_spear(self.me).await {
            Ok(()) => tracing::info!("presence removed"),
            Err(e) => {
                tracing::warn!(error = %e, "presence not removed; it expires with the heartbeat")
            }
        }
    }

    fn take_dirty(&self) -> Dirty {
        self.marks
            .dirty
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    /// Writes the current values of what changed.
    async fn flush(&self) -> Result<(), RedisError> {
        let dirty = self.take_dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for uid in &dirty.users {
            self.put_user(&mut batch, *uid, self.roster.connections_of(*uid));
        }
        for (gid, uid) in &dirty.members {
            let key = self.keys.group_members(*gid, self.me);
            let verb = if self.roster.is_member(*gid, *uid) {
                "SADD"
            } else {
                "SREM"
            };
            batch.add(&Keys::group_tag(*gid), cmd2(verb, &key, *uid));
        }
        for gid in &dirty.groups {
            self.put_group_size(&mut batch, *gid, self.roster.group_size(*gid));
        }
        self.link.exec(batch).await
    }

    fn put_user(&self, batch: &mut Batch, uid: u64, connections: u32) {
        let (user, index) = (self.keys.user(uid), self.keys.spear_users(self.me));
        if connections > 0 {
            batch.add(
                &Keys::user_tag(uid),
                cmd3("HSET", &user, self.me, connections),
            );
            batch.add(
                &Keys::spear_tag(self.me),
                cmd3("HSET", &index, uid, connections),
            );
        } else {
            batch.add(&Keys::user_tag(uid), cmd2("HDEL", &user, self.me));
            batch.add(&Keys::spear_tag(self.me), cmd2("HDEL", &index, uid));
        }
    }

    fn put_group_size(&self, batch: &mut Batch, gid: u64, size: usize) {
        let tag = Keys::group_tag(gid);
        let index = self.keys.spear_groups(self.me);
        if size > 0 {
            batch.add(&Keys::spear_tag(self.me), cmd3("HSET", &index, gid, size));
            batch.add(&tag, cmd2("SADD", &self.keys.group_spears(gid), self.me));
        } else {
            batch.add(&Keys::spear_tag(self.me), cmd2("HDEL", &index, gid));
            batch.add(&tag, cmd2("SREM", &self.keys.group_spears(gid), self.me));
            batch.add(&tag, cmd1("DEL", &self.keys.group_members(gid, self.me)));
        }
    }

    /// Flushes, renews the heartbeat and compares the index with the roster.
    async fn heartbeat(&self) -> Result<Beat, RedisError> {
        self.flush().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.alive(self.me))
            .arg(&self.run_id)
            .arg("PX")
            .arg(self.settings.presence_ttl_ms)
            .arg("GET")
            .cmd("HLEN")
            .arg(self.keys.spear_users(self.me))
            .cmd("HLEN")
            .arg(self.keys.spear_groups(self.me));
        let (previous, users, groups): (Option<String>, usize, usize) =
            self.link.query_pipeline(&pipe).await?;
        self.link
            .query::<()>(redis::cmd("SADD").arg(self.keys.spears()).arg(self.me))
            .await?;
        Ok(if previous.as_deref() != Some(self.run_id.as_str()) {
            Beat::Missing
        } else if self.roster.counts() != (users, groups) {
            Beat::Drifted
        } else {
            Beat::Fine
        })
    }

    /// Rewrites this spear's whole presence from the roster and removes what is stale.
    async fn rebuild(&self) -> Result<(), RedisError> {
        // What changes from here on is covered by the snapshot or by a later flush.
        self.take_dirty();
        let snapshot = self.roster.snapshot();
        let (old_users, old_groups) = self.index(self.me).await?;
        let mut batch = Batch::default();
        for uid in old_users.difference(&snapshot.users.keys().copied().collect()) {
            self.put_user(&mut batch, *uid, 0);
        }
        for gid in old_groups.difference(&snapshot.groups.keys().copied().collect()) {
            self.put_group_size(&mut batch, *gid, 0);
        }
        for (uid, n) in &snapshot.users {
            self.put_user(&mut batch, *uid, *n);
        }
        for (gid, members) in &snapshot.groups {
            let key = self.keys.group_members(*gid, self.me);
            let tag = Keys::group_tag(*gid);
            batch.add(&tag, cmd1("DEL", &key));
            let mut sadd = redis::cmd("SADD");
            sadd.arg(&key).arg(members);
            batch.add(&tag, sadd);
            self.put_group_size(&mut batch, *gid, members.len());
        }
        let n = batch.len();
        self.link.exec(batch).await?;
        tracing::info!(
            users = snapshot.users.len(),
            groups = snapshot.groups.len(),
            commands = n,
            "presence rebuilt"
        );
        Ok(())
    }

    /// The users and groups spear `sid` has written, from its index.
    async fn index(&self, sid: NodeId) -> Result<(HashSet<u64>, HashSet<u64>), RedisError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HKEYS")
            .arg(self.keys.spear_users(sid))
            .cmd("HKEYS")
            .arg(self.keys.spear_groups(sid));
        let (users, groups): (Vec<u64>, Vec<u64>) = self.link.query_pipeline(&pipe).await?;
        Ok((users.into_iter().collect(), groups.into_iter().collect()))
    }

    /// Removes the entries of spears whose heartbeat expired.
    async fn sweep_dead(&self) {
        let spears: Vec<NodeId> = match self
            .link
            .query(redis::cmd("SMEMBERS").arg(self.keys.spears()))
            .await
        {
            Ok(s) => s,
            Err(_) => return,
        };
        for sid in spears.into_iter().filter(|s| *s != self.me) {
            let alive: Result<bool, _> = self
                .link
                .query(redis::cmd("EXISTS").arg(self.keys.alive(sid)))
                .await;
            if matches!(alive, Ok(false)) {
                match self.remove_spear(sid).await {
                    Ok(()) => tracing::info!(spear = sid, "removed the presence of a dead spear"),
                    Err(e) => {
                        tracing::debug!(spear = sid, error = %e, "dead spear not removed yet")
                    }
                }
            }
        }
    }

    /// Deletes everything spear `sid` wrote, found through its index.
    async fn remove_spear(&self, sid: NodeId) -> Result<(), RedisError> {
        let (users, groups) = self.index(sid).await?;
        let mut batch = Batch::default();
        for uid in users {
            batch.add(
                &Keys::user_tag(uid),
                cmd2("HDEL", &self.keys.user(uid), sid),
            );
        }
        for gid in groups {
            let tag = Keys::group_tag(gid);
            batch.add(&tag, cmd2("SREM", &self.keys.group_spears(gid), sid));
            batch.add(&tag, cmd1("DEL", &self.keys.group_members(gid, sid)));
        }
        let tag = Keys::spear_tag(sid);
        batch.add(&tag, cmd1("DEL", &self.keys.spear_users(sid)));
        batch.add(&tag, cmd1("DEL", &self.keys.spear_groups(sid)));
        if sid == self.me {
            batch.add(&tag, cmd1("DEL", &self.keys.alive(sid)));
        }
        batch.add(Keys::SPEARS_TAG, cmd2("SREM", &self.keys.spears(), sid));
        self.link.exec(batch).await
    }
}

fn cmd1(verb: &str, key: &str) -> redis::Cmd {
    let mut c = redis::cmd(verb);
    c.arg(key);
    c
}

fn cmd2(verb: &str, key: &str, a: impl redis::ToRedisArgs) -> redis::Cmd {
    let mut c = redis::cmd(verb);
    c.arg(key).arg(a);
    c
}

fn cmd3(
    verb: &str,
    key: &str,
    a: impl redis::ToRedisArgs,
    b: impl redis::ToRedisArgs,
) -> redis::Cmd {
    let mut c = redis::cmd(verb);
    c.arg(key).arg(a).arg(b);
    c
}
