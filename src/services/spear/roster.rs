//! Who is on this spear: authenticated connections, the users they belong to, and the groups
//! they joined. The roster is the spear's own truth; the relay's subscriptions and the presence
//! in Redis follow it through [`ChangeSink`]s, which it calls in order, under its lock, so a
//! group's "first member arrived" can never overtake its "last member left".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// A transition that the relay or presence acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A user's first connection on this spear.
    UserOnline(u64),
    /// A user's connection count on this spear changed, but not to or from zero.
    UserConnections(u64),
    /// A user's last connection on this spear closed.
    UserOffline(u64),
    /// A group's first member on this spear.
    GroupOpened(u64),
    /// A group's last member on this spear left.
    GroupClosed(u64),
    /// User `uid` became (`joined`) or stopped being a member of group `gid` on this spear.
    Member {
        /// The group.
        gid: u64,
        /// The user.
        uid: u64,
        /// Whether the user is now a member.
        joined: bool,
    },
}

/// Follows the roster's changes. Called under the roster's lock: it must not block. It may
/// return a receiver that completes when the change has taken effect (a subscription made).
pub trait ChangeSink: Send + Sync {
    /// Takes note of `change`.
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>>;
}

/// A connection's key in the roster.
pub trait ConnKey: Copy + Eq + Hash + Send + 'static {}
impl<T: Copy + Eq + Hash + Send + 'static> ConnKey for T {}

struct Conn {
    uid: u64,
    groups: HashSet<u64>,
}

struct Inner<K> {
    conns: HashMap<K, Conn>,
    /// uid → connections on this spear.
    users: HashMap<u64, u32>,
    /// gid → uid → connections of that user in the group.
    groups: HashMap<u64, HashMap<u64, u32>>,
}

/// A copy of the whole roster, for rebuilding presence.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// uid → connections.
    pub users: BTreeMap<u64, u32>,
    /// gid → its members here.
    pub groups: BTreeMap<u64, Vec<u64>>,
}

/// The spear's roster, keyed by connection id `K`.
pub struct Roster<K> {
    inner: Mutex<Inner<K>>,
    sinks: Vec<Arc<dyn ChangeSink>>,
}

/// Receivers of changes that take effect asynchronously; await them outside the lock.
pub type Pending = Vec<oneshot::Receiver<()>>;

impl<K: ConnKey> Roster<K> {
    /// An empty roster that tells `sinks` of every change.
    pub fn new(sinks: Vec<Arc<dyn ChangeSink>>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                conns: HashMap::new(),
                users: HashMap::new(),
                groups: HashMap::new(),
            }),
            sinks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the roster, so carry on with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, change: Change, pending: &mut Pending) {
        for sink in &self.sinks {
            if let Some(rx) = sink.changed(change) {
                pending.push(rx);
            }
        }
    }

    /// Binds connection `conn` to user `uid` (a repeated bind is a no-op).
    pub fn bind(&self, conn: K, uid: u64) -> Pending {
        let mut pending = Vec::new();
        let mut inner = self.lock();
        if inner.conns.contains_key(&conn) {
            return pending;
        }
        inner.conns.insert(
            conn,
            Conn {
                uid,
                groups: HashSet::new(),
            },
        );
        let count = inner.users.entry(uid).or_insert(0);
        *count += 1;
        let change = if *count == 1 {
            Change::UserOnline(uid)
        } else {
            Change::UserConnections(uid)
        };
        self.emit(change, &mut pending);
        pending
    }

    /// Joins `conn` to `groups` (a group it is in already is left as it is).
    pub fn join(&self, conn: K, groups: &[u64]) -> Pending {
        let mut guard = self.lock();
        self.join_locked(&mut guard, conn, groups)
    }

    /// Joins `conn` to `groups` unless that would put it in more than `max` groups; then
    /// nothing changes and `Err` carries how many it would have been in. Check and join happen
    /// under one lock, so concurrent requests cannot pass the limit together.
    pub fn join_at_most(&self, conn: K, groups: &[u64], max: usize) -> Result<Pending, usize> {
        let mut guard = self.lock();
        if let Some(c) = guard.conns.get(&conn) {
            let wanted: HashSet<&u64> = groups.iter().collect();
            let new = wanted.iter().filter(|g| !c.groups.contains(g)).count();
            let total = c.groups.len() + new;
            if total > max {
                return Err(total);
            }
        }
        Ok(self.join_locked(&mut guard, conn, groups))
    }

    fn join_locked(&self, inner: &mut Inner<K>, conn: K, groups: &[u64]) -> Pending {
        let mut pending = Vec::new();
        let Some(c) = inner.conns.get_mut(&conn) else {
            return pending;
        };
        let uid = c.uid;
        for &gid in groups {
            if !c.groups.insert(gid) {
                continue;
            }
            let members = inner.groups.entry(gid).or_default();
            if members.is_empty() {
                self.emit(Change::GroupOpened(gid), &mut pending);
            }
            let n = members.entry(uid).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.emit(
                    Change::Member {
                        gid,
                        uid,
                        joined: true,
                    },
                    &mut pending,
                );
            }
        }
        pending
    }

    /// Takes `conn` out of `groups`.
    pub fn leave(&self, conn: K, groups: &[u64]) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(c) = inner.conns.get_mut(&conn) else {
            return;
        };
        let uid = c.uid;
        let left: Vec<u64> = groups
            .iter()
            .copied()
            .filter(|g| c.groups.remove(g))
            .collect();
        for gid in left {
            self.leave_one(inner, gid, uid);
        }
    }

    fn leave_one(&self, inner: &mut Inner<K>, gid: u64, uid: u64) {
        let mut ignored = Vec::new();
        let Some(members) = inner.groups.get_mut(&gid) else {
            return;
        };
        if let Some(n) = members.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                members.remove(&uid);
                self.emit(
                    Change::Member {
                        gid,
                        uid,
                        joined: false,
                    },
                    &mut ignored,
                );
            }
        }
        if members.is_empty() {
            inner.groups.remove(&gid);
            self.emit(Change::GroupClosed(gid), &mut ignored);
        }
    }

    /// Forgets `conn` (it disconnected).
    pub fn remove(&self, conn: K) {
        let mut ignored = Vec::new();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(c) = inner.conns.remove(&conn) else {
            return;
        };
        for gid in c.groups {
            self.leave_one(inner, gid, c.uid);
        }
        if let Some(n) = inner.users.get_mut(&c.uid) {
            *n -= 1;
            if *n == 0 {
                inner.users.remove(&c.uid);
                self.emit(Change::UserOffline(c.uid), &mut ignored);
            } else {
                self.emit(Change::UserConnections(c.uid), &mut ignored);
            }
        }
    }

    /// How many groups `conn` is in.
    pub fn groups_of(&self, conn: K) -> usize {
        self.lock().conns.get(&conn).map_or(0, |c| c.groups.len())
    }

    /// Whether `conn` is in group `gid`.
    pub fn in_group(&self, conn: K, gid: u64) -> bool {
        self.lock()
            .conns
            .get(&conn)
            .is_some_and(|c| c.groups.contains(&gid))
    }

    /// User `uid`'s connections here, each with its groups (ascending). Walks every
    /// connection: for the server API's occasional listing, not for a message's path.
    pub fn conns_of(&self, uid: u64) -> Vec<(K, Vec<u64>)> {
        let inner = self.lock();
        if !inner.users.contains_key(&uid) {
            return Vec::new();
        }
        inner
            .conns
            .iter()
            .filter(|(_, c)| c.uid == uid)
            .map(|(k, c)| {
                let mut groups: Vec<u64> = c.groups.iter().copied().collect();
                groups.sort_unstable();
                (*k, groups)
            })
            .collect()
    }

    /// Connections of user `uid` here.
    pub fn connections_of(&self, uid: u64) -> u32 {
        self.lock().users.get(&uid).copied().unwrap_or(0)
    }

    /// Whether `uid` is a member of `gid` here.
    pub fn is_member(&self, gid: u64, uid: u64) -> bool {
        self.lock()
            .groups
            .get(&gid)
            .is_some_and(|m| m.contains_key(&uid))
    }

    /// Members of `gid` here, ascending.
    pub fn members(&self, gid: u64) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .lock()
            .groups
            .get(&gid)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Number of members of `gid` here.
    pub fn group_size(&self, gid: u64) -> usize {
        self.lock().groups.get(&gid).map_or(0, HashMap::len)
    }

    /// (users, groups) here.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.users.len(), inner.groups.len())
    }

    /// The whole roster.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            users: inner.users.iter().map(|(u, n)| (*u, *n)).collect(),
            groups: inner
                .groups
                .iter()
                .map(|(g, m)| {
                    let mut members: Vec<u64> = m.keys().copied().collect();
                    members.sort_unstable();
                    (*g, members)
                })
                .collect(),
        }
    }
}

/// What presence and stat read of a roster, whatever its connection key.
pub trait RosterView: Send + Sync {
    /// Connections of user `uid` here.
    fn connections_of(&self, uid: u64) -> u32;
    /// Whether `uid` is a member of `gid` here.
    fn is_member(&self, gid: u64, uid: u64) -> bool;
    /// Members of `gid` here, ascending.
    fn members(&self, gid: u64) -> Vec<u64>;
    /// Number of members of `gid` here.
    fn group_size(&self, gid: u64) -> usize;
    /// (users, groups) here.
    fn counts(&self) -> (usize, usize);
    /// The whole roster.
    fn snapshot(&self) -> Snapshot;
}

impl<K: ConnKey> RosterView for Roster<K> {
    fn connections_of(&self, uid: u64) -> u32 {
        Roster::connections_of(self, uid)
    }
    fn is_member(&self, gid: u64, uid: u64) -> bool {
        Roster::is_member(self, gid, uid)
    }
    fn members(&self, gid: u64) -> Vec<u64> {
        Roster::members(self, gid)
    }
    fn group_size(&self, gid: u64) -> usize {
        Roster::group_size(self, gid)
    }
    fn counts(&self) -> (usize, usize) {
        Roster::counts(self)
    }
    fn snapshot(&self) -> Snapshot {
        Roster::snapshot(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Mutex<Vec<Change>>);

    impl ChangeSink for Log {
        fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
            self.0.lock().expect("log").push(change);
            None
        }
    }

    fn roster() -> (Roster<u32>, Arc<Log>) {
        let log = Arc::new(Log::default());
        (Roster::new(vec![log.clone()]), log)
    }

    fn take(log: &Log) -> Vec<Change> {
        std::mem::take(&mut *log.0.lock().expect("log"))
    }

    #[test]
    fn first_and_last_connection_of_a_user_are_transitions() {
        let (r, log) = roster();
        r.bind(1, 100);
        r.bind(2, 100);
        r.bind(2, 100); // repeated auth on one connection
        assert_eq!(
            take(&log),
            [Change::UserOnline(100), Change::UserConnections(100)]
        );
        assert_eq!(r.connections_of(100), 2);
        r.remove(1);
        r.remove(2);
        r.remove(2);
        assert_eq!(
            take(&log),
            [Change::UserConnections(100), Change::UserOffline(100)]
        );
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn groups_open_on_the_first_member_and_close_on_the_last() {
        let (r, log) = roster();
        r.bind(1, 100);
        r.bind(2, 100);
        r.bind(3, 200);
        take(&log);
        r.join(1, &[10, 11]);
        r.join(2, &[10]);
        r.join(3, &[10]);
        r.join(3, &[10]); // already in
        let member = |gid, uid, joined| Change::Member { gid, uid, joined };
        assert_eq!(
            take(&log),
            [
                Change::GroupOpened(10),
                member(10, 100, true),
                Change::GroupOpened(11),
                member(11, 100, true),
                member(10, 200, true),
            ]
        );
        assert_eq!(r.members(10), [100, 200]);
        r.leave(1, &[10, 12]);
        assert!(
            take(&log).is_empty(),
            "user 100 is still in 10 through connection 2"
        );
        r.remove(2);
        assert_eq!(
            take(&log),
            [member(10, 100, false), Change::UserConnections(100)]
        );
        r.remove(3);
        r.remove(1);
        assert_eq!(
            take(&log),
            [
                member(10, 200, false),
                Change::GroupClosed(10),
                Change::UserOffline(200),
                member(11, 100, false),
                Change::GroupClosed(11),
                Change::UserOffline(100),
            ]
        );
        assert_eq!(r.snapshot(), Snapshot::default());
    }

    #[test]
    fn the_group_limit_counts_new_groups_once_and_refuses_all_or_nothing() {
        let (r, _) = roster();
        r.bind(1, 100);
        assert!(
            r.join_at_most(1, &[10, 10, 11], 2).is_ok(),
            "a repeat counts once"
        );
        assert!(
            r.join_at_most(1, &[11, 10], 2).is_ok(),
            "groups joined already"
        );
        assert_eq!(r.join_at_most(1, &[12, 10], 2).map(|_| ()), Err(3));
        assert!(!r.in_group(1, 12), "a refused join changes nothing");
        assert_eq!(r.groups_of(1), 2);
    }

    #[test]
    fn unbound_connections_join_nothing() {
        let (r, log) = roster();
        r.join(9, &[10]);
        r.leave(9, &[10]);
        r.remove(9);
        assert!(take(&log).is_empty());
        assert_eq!(r.group_size(10), 0);
    }

    #[test]
    fn the_snapshot_lists_users_and_members() {
        let (r, _) = roster();
        r.bind(1, 100);
        r.bind(2, 100);
        r.bind(3, 200);
        r.join(1, &[10]);
        r.join(3, &[10, 11]);
        let s = r.snapshot();
        assert_eq!(s.users, BTreeMap::from([(100, 2), (200, 1)]));
        assert_eq!(
            s.groups,
            BTreeMap::from([(10, vec![100, 200]), (11, vec![200])])
        );
        assert_eq!(r.groups_of(3), 2);
    }
}
